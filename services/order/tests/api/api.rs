//! The order API: every 422 case, idempotency keys, ownership, and a peer that is down.

use std::collections::HashSet;

use crate::common::{Options, System, TestUser, error_fields, start, start_with};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::assert_problem;
use uuid::Uuid;

async fn post(system: &System, user: &TestUser, body: &Value) -> reqwest::Response {
    system
        .orders(user, Method::POST, "/orders")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `body` posted by `user` under idempotency `key`.
async fn post_keyed(
    system: &System,
    user: &TestUser,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    system
        .orders(user, Method::POST, "/orders")
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn count_orders(system: &System) -> usize {
    system.all_orders().await.len()
}

#[tokio::test]
async fn each_invalid_order_is_a_422_naming_the_field_and_stores_nothing() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(100, 5).await;
    let line = |id: &str, quantity: i64| json!({"product_id": id, "quantity": quantity});
    let many: Vec<Value> = (0..51)
        .map(|_| line(&Uuid::new_v4().to_string(), 1))
        .collect();
    let cases = [
        (json!({"items": [], "payment_method": "tok_visa"}), "items"),
        (json!({"payment_method": "tok_visa"}), "items"),
        (
            json!({"items": [line(&a, 0)], "payment_method": "tok_visa"}),
            "items[0].quantity",
        ),
        (
            json!({"items": [line(&a, 1001)], "payment_method": "tok_visa"}),
            "items[0].quantity",
        ),
        (
            json!({"items": [line(&a, -3)], "payment_method": "tok_visa"}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"product_id": a}], "payment_method": "tok_visa"}),
            "items[0].quantity",
        ),
        (
            json!({"items": [line(&a, 1), line(&a, 2)], "payment_method": "tok_visa"}),
            "items[1].product_id",
        ),
        (
            json!({"items": many, "payment_method": "tok_visa"}),
            "items",
        ),
        (
            json!({"items": [line(&Uuid::new_v4().to_string(), 1)], "payment_method": "tok_visa"}),
            "items[0].product_id",
        ),
        (
            json!({"items": [line("not-a-uuid", 1)], "payment_method": "tok_visa"}),
            "items[0].product_id",
        ),
        (json!({"items": [line(&a, 1)]}), "payment_method"),
        (
            json!({"items": [line(&a, 1)], "payment_method": ""}),
            "payment_method",
        ),
        (
            json!({"items": [line(&a, 1)], "payment_method": "tok_mastercard"}),
            "payment_method",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_problem(post(&system, &buyer, &body).await, 422).await;
        assert_eq!(error_fields(&problem), [field], "{body}");
    }

    let quantity_text =
        json!({"items": [{"product_id": a, "quantity": "2"}], "payment_method": "tok_visa"});
    assert_problem(post(&system, &buyer, &quantity_text).await, 422).await;
    let bad_key = system
        .orders(&buyer, Method::POST, "/orders")
        .header("idempotency-key", "has space")
        .json(&json!({"items": [line(&a, 1)], "payment_method": "tok_visa"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad_key, 422).await;
    assert_eq!(error_fields(&problem), ["Idempotency-Key"]);
    let malformed = system
        .orders(&buyer, Method::POST, "/orders")
        .header("content-type", "application/json")
        .body("{\"items\": [")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;

    assert_eq!(count_orders(&system).await, 0);
    assert_eq!(system.available(&a).await, 5);
}

#[tokio::test]
async fn prices_come_from_the_inventory_service_not_the_client() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(1_234, 5).await;
    let body = json!({
        "items": [{"product_id": a, "quantity": 2, "unit_price_cents": 1}],
        "payment_method": "tok_visa"
    });
    // A price in the body is not a field of the request at all.
    assert_problem(post(&system, &buyer, &body).await, 422).await;
    let id = system.order(&buyer, &[(&a, 2)], "tok_visa").await;
    let order = system.get_order(&buyer, &id).await;
    assert_eq!(order["items"][0]["unit_price_cents"], 1_234);
    assert_eq!(order["total_cents"], 2_468);
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["user_id"], buyer.id.to_string());
}

#[tokio::test]
async fn twenty_concurrent_posts_with_one_idempotency_key_make_one_order() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(100, 100).await;
    let body = json!({"items": [{"product_id": a, "quantity": 1}], "payment_method": "tok_visa"});
    let key = Uuid::new_v4().to_string();

    let responses =
        futures::future::join_all((0..20).map(|_| post_keyed(&system, &buyer, &key, &body))).await;
    let mut ids = HashSet::new();
    let mut replayed = 0;
    for response in responses {
        assert_eq!(response.status(), 202);
        if response.headers().contains_key("idempotent-replayed") {
            replayed += 1;
        }
        let order: Value = response.json().await.unwrap();
        ids.insert(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one order for one key");
    assert_eq!(replayed, 19);
    assert_eq!(count_orders(&system).await, 1);
    let id = ids.into_iter().next().unwrap();
    assert_eq!(system.settled(&id).await["status"], "confirmed");
    assert_eq!(system.available(&a).await, 99, "charged and reserved once");
    assert_eq!(system.payments_for(&id).await.len(), 1);

    // Later, the same key and body: the same order, in its current state.
    let again = post_keyed(&system, &buyer, &key, &body).await;
    assert_eq!(again.status(), 202);
    let order: Value = again.json().await.unwrap();
    assert_eq!(
        (
            order["id"].as_str().unwrap(),
            order["status"].as_str().unwrap()
        ),
        (id.as_str(), "confirmed")
    );

    // The same key with another body.
    let other = json!({"items": [{"product_id": a, "quantity": 2}], "payment_method": "tok_visa"});
    let reused = post_keyed(&system, &buyer, &key, &other).await;
    assert_problem(reused, 422).await;

    // Keys are per user: another user's identical key is another order.
    let neighbour = system.user().await;
    let theirs = post_keyed(&system, &neighbour, &key, &body).await;
    assert_eq!(theirs.status(), 202);
    let order: Value = theirs.json().await.unwrap();
    assert_ne!(order["id"].as_str().unwrap(), id);
    assert_eq!(count_orders(&system).await, 2);
}

#[tokio::test]
async fn users_see_and_cancel_only_their_own_orders_and_admins_see_all() {
    let system = start().await;
    let (alice, bob) = (system.user().await, system.user().await);
    let a = system.product(100, 10).await;
    let alices = system.order(&alice, &[(&a, 1)], "tok_visa").await;
    let bobs = system.order(&bob, &[(&a, 1)], "tok_visa").await;
    system.settled(&alices).await;
    system.settled(&bobs).await;

    let hidden = system
        .orders(&bob, Method::GET, &format!("/orders/{alices}"))
        .send()
        .await
        .unwrap();
    let missing = system
        .orders(&bob, Method::GET, &format!("/orders/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    let hidden = assert_problem(hidden, 404).await;
    let missing = assert_problem(missing, 404).await;
    assert_eq!(
        hidden["detail"], missing["detail"],
        "another's order looks missing"
    );
    let cancel = system.cancel(&bob, &alices).await;
    assert_problem(cancel, 404).await;
    assert_eq!(
        system.get_order(&alice, &alices).await["status"],
        "confirmed"
    );

    let list: Value = system
        .orders(&bob, Method::GET, "/orders")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [bobs.as_str()]);
    let bobs_payments = system.payments_of(&bob).await;
    assert_eq!(bobs_payments.len(), 1);
    assert_eq!(bobs_payments[0]["order_id"], bobs.as_str());

    let all: Vec<String> = system
        .all_orders()
        .await
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, [bobs.clone(), alices.clone()], "newest first");
    let newest: Value = system
        .orders(&system.admin, Method::GET, "/orders?limit=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newest["data"].as_array().unwrap().len(), 1);
    assert_eq!(newest["data"][0]["id"], bobs.as_str());
    for bad in ["0", "1001", "ten"] {
        let response = system
            .orders(&system.admin, Method::GET, &format!("/orders?limit={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_fields(&assert_problem(response, 422).await),
            ["limit"]
        );
    }
    assert_eq!(system.all_payments().await.len(), 2);
    let cancelled = system
        .orders(
            &system.admin,
            Method::POST,
            &format!("/orders/{alices}/cancel"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 202);
}

#[tokio::test]
async fn with_the_user_service_down_an_order_is_a_503_and_nothing_is_stored() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let system = start_with(Options {
        user_service_url: Some(url),
        ..Options::default()
    })
    .await;
    let buyer = TestUser {
        id: Uuid::new_v4(),
        roles: "user",
    };
    let a = system.product(100, 10).await;
    let body = json!({"items": [{"product_id": a, "quantity": 1}], "payment_method": "tok_visa"});

    for _ in 0..8 {
        let problem = assert_problem(post(&system, &buyer, &body).await, 503).await;
        assert_eq!(problem["detail"], "The user service is unavailable.");
    }
    // After repeated failures the breaker is open: calls fail at once, without trying.
    let metrics =
        test_support::http::text(system.client.get(format!("{}/metrics", system.order.url())))
            .await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_client_breaker_state{")
                && l.contains("peer=\"user\"")
                && l.ends_with(" 1")),
        "the user breaker is open:\n{metrics}"
    );
    assert_eq!(count_orders(&system).await, 0);
    assert_eq!(system.available(&a).await, 10);
}
