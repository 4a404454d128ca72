//! The inventory service's part of the order saga, driven by real events.

use std::time::Duration;

use crate::common::{TestApp, eventually, spawn_app};
use contracts::events::{OrderCreated, OrderLine, streams, types};
use event_bus::{Envelope, Publisher};
use uuid::Uuid;

fn order(lines: &[(&str, i64)]) -> OrderCreated {
    OrderCreated {
        order_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        items: lines
            .iter()
            .map(|(id, quantity)| OrderLine {
                product_id: id.parse().unwrap(),
                quantity: *quantity,
                unit_price_cents: 100,
            })
            .collect(),
        total_cents: 100,
        currency: "USD".into(),
        payment_method: "tok_visa".into(),
    }
}

async fn publish(
    app: &TestApp,
    stream: &str,
    event_type: &str,
    data: &impl serde::Serialize,
) -> Envelope {
    let envelope = Envelope::new(event_type, "tests", data).unwrap();
    Publisher::new(app.redis.clone(), 10_000)
        .publish(&app.stream(stream), &envelope)
        .await
        .unwrap();
    envelope
}

async fn count(app: &TestApp, event_type: &str) -> usize {
    app.events(streams::INVENTORY)
        .await
        .iter()
        .filter(|(t, _)| t == event_type)
        .count()
}

#[tokio::test]
async fn an_order_whose_lines_are_in_stock_is_reserved_and_a_declined_payment_releases_it() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 5).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.product("B", 100, 5).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = order(&[(&a, 2), (&b, 3)]);
    publish(&app, streams::ORDER, types::ORDER_CREATED, &created).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&app, types::INVENTORY_RESERVED).await == 1
        })
        .await
    );
    assert_eq!((app.available(&a).await, app.available(&b).await), (3, 2));
    let reserved = app.events(streams::INVENTORY).await;
    assert_eq!(reserved[0].1["order_id"], created.order_id.to_string());
    assert_eq!(reserved[0].1["payment_method"], "tok_visa");

    publish(
        &app,
        streams::PAYMENT,
        types::PAYMENT_DECLINED,
        &serde_json::json!({"order_id": created.order_id}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&app, types::INVENTORY_RELEASED).await == 1
        })
        .await
    );
    assert_eq!((app.available(&a).await, app.available(&b).await), (5, 5));
}

#[tokio::test]
async fn an_order_with_one_line_short_reserves_nothing() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 5).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.product("B", 100, 1).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    publish(
        &app,
        streams::ORDER,
        types::ORDER_CREATED,
        &order(&[(&a, 2), (&b, 3)]),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&app, types::INVENTORY_REJECTED).await == 1
        })
        .await
    );
    let rejected = app.events(streams::INVENTORY).await;
    assert_eq!(rejected[0].1["reason"], "out_of_stock");
    assert_eq!(
        (app.available(&a).await, app.available(&b).await),
        (5, 1),
        "a line was held"
    );
}

#[tokio::test]
async fn fifty_racing_orders_for_ten_units_reserve_exactly_ten() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 10).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let publishes = (0..50).map(|_| {
        let order = order(&[(&a, 1)]);
        let app = &app;
        async move { publish(app, streams::ORDER, types::ORDER_CREATED, &order).await }
    });
    futures::future::join_all(publishes).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            count(&app, types::INVENTORY_RESERVED).await
                + count(&app, types::INVENTORY_REJECTED).await
                == 50
        })
        .await
    );
    assert_eq!(count(&app, types::INVENTORY_RESERVED).await, 10);
    assert_eq!(count(&app, types::INVENTORY_REJECTED).await, 40);
    assert_eq!(app.available(&a).await, 0);
}

#[tokio::test]
async fn a_redelivered_order_created_reserves_once() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 10).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let envelope = Envelope::new(types::ORDER_CREATED, "tests", &order(&[(&a, 4)])).unwrap();
    let publisher = Publisher::new(app.redis.clone(), 10_000);
    for _ in 0..2 {
        publisher
            .publish(&app.stream(streams::ORDER), &envelope)
            .await
            .unwrap();
    }
    // The same order in a second envelope (the producer's outbox published it twice).
    let mut again = envelope.clone();
    again.id = Uuid::new_v4();
    publisher
        .publish(&app.stream(streams::ORDER), &again)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&app, types::INVENTORY_RESERVED).await == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&app, types::INVENTORY_RESERVED).await, 1);
    assert_eq!(app.available(&a).await, 6);
}

#[tokio::test]
async fn an_order_cancelled_before_its_creation_is_handled_never_holds_stock() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 5).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = order(&[(&a, 2)]);
    publish(
        &app,
        streams::ORDER,
        types::ORDER_CANCELLED,
        &serde_json::json!({"order_id": created.order_id}),
    )
    .await;
    publish(&app, streams::ORDER, types::ORDER_CREATED, &created).await;
    let pool = sqlx::PgPool::connect(app.db.url()).await.unwrap();
    let handled = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM inbox"#)
            .fetch_one(&pool)
            .await
            .unwrap()
            == 2
    })
    .await;
    assert!(handled);
    assert_eq!(app.available(&a).await, 5);
    assert_eq!(count(&app, types::INVENTORY_RESERVED).await, 0);
}

/// `events_batches_split_total` of the service: batches that failed and ran event by
/// event.
async fn batches_split(app: &TestApp) -> u64 {
    let metrics =
        test_support::http::text(app.request(reqwest::Method::GET, "/metrics", false)).await;
    metrics
        .lines()
        .filter(|l| l.starts_with("events_batches_split_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_reserved_together_take_effect_once_though_an_event_among_them_always_fails() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 1_000).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.product("B", 100, 1_000).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders: Vec<OrderCreated> = (0..40)
        .map(|n| order(&[(&a, 1), (&b, 1 + n % 3)]))
        .collect();
    let mut events: Vec<Envelope> = orders
        .iter()
        .map(|o| Envelope::new(types::ORDER_CREATED, "tests", o).unwrap())
        .collect();
    // An order.created that can never be applied, three times among the others, and one
    // good event delivered twice.
    for at in [5, 20, 35] {
        let broken = serde_json::json!({"order_id": "not an id", "items": "none"});
        events.insert(
            at,
            Envelope::new(types::ORDER_CREATED, "tests", &broken).unwrap(),
        );
    }
    events.push(events[0].clone());
    Publisher::new(app.redis.clone(), 10_000)
        .publish_batch(&app.stream(streams::ORDER), &events)
        .await
        .unwrap();

    let dead = event_bus::dead_letter_stream(&app.stream(streams::ORDER));
    let settled = eventually(Duration::from_secs(20), || async {
        let mut redis = app.redis.clone();
        let dead_letters: usize = redis::cmd("XLEN")
            .arg(&dead)
            .query_async(&mut redis)
            .await
            .unwrap();
        dead_letters == 3 && count(&app, types::INVENTORY_RESERVED).await == 40
    })
    .await;
    assert!(
        settled,
        "not every good order was reserved, or not every broken one dead-lettered"
    );
    assert!(
        batches_split(&app).await >= 1,
        "no batch held a broken event: the batched path was not tested"
    );
    // Exactly once: one reservation per line, one event per order, stock taken once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reserved: std::collections::HashSet<String> = app
        .events(streams::INVENTORY)
        .await
        .into_iter()
        .filter(|(t, _)| t == types::INVENTORY_RESERVED)
        .map(|(_, data)| data["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reserved.len(), 40);
    assert_eq!(count(&app, types::INVENTORY_RESERVED).await, 40);
    let b_taken: i64 = (0..40).map(|n| 1 + n % 3).sum();
    assert_eq!(app.available(&a).await, 1_000 - 40);
    assert_eq!(app.available(&b).await, 1_000 - b_taken);
    let pool = sqlx::PgPool::connect(app.db.url()).await.unwrap();
    let lines: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM reservations"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lines, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_that_together_exceed_the_stock_are_reserved_one_by_one_and_only_what_fits() {
    let app = spawn_app().await;
    let a = app.product("A", 100, 10).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Vec<Envelope> = (0..25)
        .map(|_| Envelope::new(types::ORDER_CREATED, "tests", &order(&[(&a, 1)])).unwrap())
        .collect();
    Publisher::new(app.redis.clone(), 10_000)
        .publish_batch(&app.stream(streams::ORDER), &events)
        .await
        .unwrap();
    let settled = eventually(Duration::from_secs(20), || async {
        count(&app, types::INVENTORY_RESERVED).await + count(&app, types::INVENTORY_REJECTED).await
            == 25
    })
    .await;
    assert!(settled);
    assert_eq!(count(&app, types::INVENTORY_RESERVED).await, 10);
    assert_eq!(count(&app, types::INVENTORY_REJECTED).await, 15);
    assert_eq!(app.available(&a).await, 0);
}
