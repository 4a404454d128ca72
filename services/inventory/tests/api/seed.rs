//! The demo products of `SEED_PRODUCTS_FILE`: created once, never twice, and left as
//! they are by a restart.

use crate::common::spawn_app_with;

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/demo/products.json")
}

#[tokio::test]
async fn the_seed_products_are_there_at_start_and_a_restart_neither_adds_nor_resets_them() {
    let mut app = spawn_app_with(|config| config.seed_products_file = Some(demo())).await;
    let listed = |app: &crate::common::TestApp| {
        test_support::http::json(app.request(Method::GET, "/products", false))
    };
    let products: Value = listed(&app).await;
    let mut stock: Vec<(String, i64)> = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["sku"].as_str().unwrap().to_owned(),
                p["available"].as_i64().unwrap(),
            )
        })
        .collect();
    stock.sort();
    assert_eq!(
        stock,
        [
            ("CAP-1".into(), 20),
            ("MUG-1".into(), 100),
            ("TEE-1".into(), 50)
        ]
    );

    let mug = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sku"] == "MUG-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restocked = app
        .request(Method::POST, &format!("/products/{mug}/stock"), true)
        .json(&json!({"delta": -7}))
        .send()
        .await
        .unwrap();
    assert_eq!(restocked.status(), 200);

    app.restart_with(|config| config.seed_products_file = Some(demo()))
        .await;
    let again: Value = listed(&app).await;
    assert_eq!(again["data"].as_array().unwrap().len(), 3, "{again}");
    assert_eq!(app.available(&mug).await, 93, "the restart reset the stock");
}

#[tokio::test]
async fn a_broken_seed_file_stops_the_service_from_starting_and_says_where() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"[{"sku":"X","name":"x","price_cents":0,"stock":1}]"#,
    )
    .unwrap();
    let db = test_support::TestDatabase::create().await;
    let keys = test_support::StreamKeys::new();
    let mut config = crate::common::settings(&db, &keys);
    config.seed_products_file = Some(file.path().to_owned());
    let Err(error) = inventory_service::Application::build(config).await else {
        panic!("the service started with a broken seed file");
    };
    let message = format!("{error:#}");
    assert!(message.contains("product 0"), "{message}");
    assert!(
        message.contains("price_cents must be at least 1"),
        "{message}"
    );
}
