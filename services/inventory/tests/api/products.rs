//! The products API over real HTTP against a real database.

use crate::common;

use crate::common::{assert_problem, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn an_admin_creates_a_product_that_anyone_signed_in_can_list_and_read() {
    let app = spawn_app().await;
    let first = app.product("SKU-1", 1250, 7).await;
    assert_eq!(first["currency"], "USD");
    assert_eq!(first["available"], 7);
    assert_eq!(first["price_cents"], 1250);
    let second = app.product("SKU-2", 99, 0).await;

    let list: Value = app
        .request(Method::GET, "/products", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let skus: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["SKU-2", "SKU-1"], "newest first");
    let one: Value = app
        .request(
            Method::GET,
            &format!("/products/{}", second["id"].as_str().unwrap()),
            false,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, second);
}

#[tokio::test]
async fn a_user_who_is_not_an_admin_may_not_create_or_restock() {
    let app = spawn_app().await;
    let product = app.product("SKU-1", 100, 1).await;
    let create = app
        .request(Method::POST, "/products", false)
        .json(&json!({"sku": "X", "name": "X", "price_cents": 1, "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(create, 403).await;
    let restock = app
        .request(
            Method::POST,
            &format!("/products/{}/stock", product["id"].as_str().unwrap()),
            false,
        )
        .json(&json!({"delta": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(restock, 403).await;
}

#[tokio::test]
async fn invalid_products_are_422_and_a_duplicate_sku_is_409() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"sku": "A", "name": "A", "price_cents": 0, "stock": 1}),
            "price_cents",
        ),
        (
            json!({"sku": "A", "name": "A", "price_cents": 1, "stock": -1}),
            "stock",
        ),
        (
            json!({"sku": "", "name": "A", "price_cents": 1, "stock": 1}),
            "sku",
        ),
        (
            json!({"sku": "A", "name": " ", "price_cents": 1, "stock": 1}),
            "name",
        ),
    ] {
        let response = app
            .request(Method::POST, "/products", true)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    app.product("DUP", 1, 1).await;
    let duplicate = app
        .request(Method::POST, "/products", true)
        .json(&json!({"sku": "DUP", "name": "Again", "price_cents": 5, "stock": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(duplicate, 409).await;
}

#[tokio::test]
async fn stock_moves_by_delta_and_never_below_zero_however_adjustments_race() {
    let app = spawn_app().await;
    let product = app.product("SKU-1", 100, 10).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let path = format!("/products/{id}/stock");
    let up: Value = app
        .request(Method::POST, &path, true)
        .json(&json!({"delta": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["available"], 15);
    let too_far = app
        .request(Method::POST, &path, true)
        .json(&json!({"delta": -16}))
        .send()
        .await
        .unwrap();
    assert_problem(too_far, 409).await;

    let takes = (0..40).map(|_| {
        app.request(Method::POST, &path, true)
            .json(&json!({"delta": -1}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(takes)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 15);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 25);
    assert_eq!(app.available(&id).await, 0);
}

#[tokio::test]
async fn an_unknown_or_malformed_product_id_is_404() {
    let app = spawn_app().await;
    for path in [
        "/products/not-a-uuid",
        &format!("/products/{}", uuid::Uuid::new_v4()),
    ] {
        let response = app.request(Method::GET, path, false).send().await.unwrap();
        assert_problem(response, 404).await;
    }
    let restock = app
        .request(
            Method::POST,
            &format!("/products/{}/stock", uuid::Uuid::new_v4()),
            true,
        )
        .json(&json!({"delta": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(restock, 404).await;
}

#[tokio::test]
async fn the_typed_inventory_client_reads_the_real_service() {
    let app = spawn_app().await;
    let product = app.product("SKU-1", 1250, 3).await;
    let id: uuid::Uuid = product["id"].as_str().unwrap().parse().unwrap();
    let client = contracts::inventory::InventoryClient::new(
        service_client::Client::new(
            "order",
            service_client::PeerConfig::new(
                "inventory",
                app.service.url(),
                service_kit::config::Secret::new(common::KEY),
                &service_client::ClientSettings::default(),
            ),
        )
        .unwrap(),
    );
    let found = client.get_product(id).await.unwrap().unwrap();
    assert_eq!((found.price_cents, found.available), (1250, 3));
    let batch = client
        .get_products_by_ids(&[id, uuid::Uuid::new_v4()])
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, id);
}
