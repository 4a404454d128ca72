//! The payment service's part of the order saga, driven by real events.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{TestApp, eventually, spawn_app};
use contracts::events::{InventoryReserved, OrderCancelled, OrderRef, streams, types};
use event_bus::Envelope;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(20);

fn reserved(method: &str) -> Envelope {
    let data = InventoryReserved {
        order_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        total_cents: 1_250,
        currency: "USD".into(),
        payment_method: method.into(),
    };
    Envelope::new(types::INVENTORY_RESERVED, "tests", &data).unwrap()
}

fn cancelled(order_id: Uuid) -> Envelope {
    let data = OrderCancelled {
        order_id,
        user_id: Uuid::new_v4(),
        reason: "cancelled_by_user".into(),
        total_cents: 1_250,
        currency: "USD".into(),
    };
    Envelope::new(types::ORDER_CANCELLED, "tests", &data).unwrap()
}

fn order_of(event: &Envelope) -> Uuid {
    event.decode::<OrderRef>().unwrap().order_id
}

async fn dead_letters(app: &TestApp, stream: &str) -> usize {
    let mut redis = app.redis.clone();
    redis::cmd("XLEN")
        .arg(event_bus::dead_letter_stream(&app.stream(stream)))
        .query_async(&mut redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reserved_order_is_charged_once_and_its_cancellation_refunds_it() {
    let app = spawn_app().await;
    let visa = reserved("tok_visa");
    let declined = reserved("tok_declined");
    // Delivered twice: charged and recorded once.
    app.publish(
        streams::INVENTORY,
        &[visa.clone(), declined.clone(), visa.clone()],
    )
    .await;
    let paid = eventually(PATIENCE, || async {
        app.count(types::PAYMENT_SUCCEEDED).await == 1
            && app.count(types::PAYMENT_DECLINED).await == 1
    })
    .await;
    assert!(paid, "{:?}", app.events(streams::PAYMENT).await);
    let mut expected = vec![
        (order_of(&visa), "succeeded".to_owned()),
        (order_of(&declined), "declined".to_owned()),
    ];
    expected.sort();
    assert_eq!(app.payments().await, expected);

    app.publish(streams::ORDER, &[cancelled(order_of(&visa))])
        .await;
    let refunded = eventually(PATIENCE, || async {
        app.count(types::PAYMENT_REFUNDED).await == 1
    })
    .await;
    assert!(refunded, "{:?}", app.events(streams::PAYMENT).await);
    let statuses: HashSet<(Uuid, String)> = app.payments().await.into_iter().collect();
    assert!(statuses.contains(&(order_of(&visa), "refunded".to_owned())));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count(types::PAYMENT_SUCCEEDED).await, 1);
    assert_eq!(app.count(types::PAYMENT_REFUNDED).await, 1);
}

#[tokio::test]
async fn an_order_cancelled_before_its_reservation_is_handled_is_never_charged() {
    let app = spawn_app().await;
    let early = reserved("tok_visa");
    let control = reserved("tok_visa");
    app.publish(streams::ORDER, &[cancelled(order_of(&early))])
        .await;
    // The cancellation is remembered before the reservation arrives.
    let remembered = eventually(PATIENCE, || async {
        let n: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM cancelled_orders"#)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        n == 1
    })
    .await;
    assert!(remembered);
    app.publish(streams::INVENTORY, &[early.clone(), control.clone()])
        .await;
    assert!(
        eventually(PATIENCE, || async {
            app.count(types::PAYMENT_SUCCEEDED).await == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.payments().await,
        vec![(order_of(&control), "succeeded".to_owned())]
    );
    assert_eq!(app.count(types::PAYMENT_REFUNDED).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_charged_together_take_effect_once_though_an_event_among_them_always_fails() {
    let app = spawn_app().await;
    let mut events: Vec<Envelope> = (0..40)
        .map(|n| {
            reserved(if n % 4 == 0 {
                "tok_declined"
            } else {
                "tok_visa"
            })
        })
        .collect();
    let orders: HashSet<Uuid> = events.iter().map(order_of).collect();
    // An inventory.reserved that can never be applied, three times among the others,
    // and one good event delivered twice.
    for at in [5, 20, 35] {
        let broken = serde_json::json!({"order_id": "not an id"});
        events.insert(
            at,
            Envelope::new(types::INVENTORY_RESERVED, "tests", &broken).unwrap(),
        );
    }
    events.push(events[0].clone());
    app.publish(streams::INVENTORY, &events).await;

    let settled = eventually(PATIENCE, || async {
        dead_letters(&app, streams::INVENTORY).await == 3
            && app.count(types::PAYMENT_SUCCEEDED).await + app.count(types::PAYMENT_DECLINED).await
                == 40
    })
    .await;
    assert!(
        settled,
        "not every good order was charged, or not every broken one dead-lettered"
    );
    assert!(
        app.batches_split().await >= 1,
        "no batch held a broken event: the batched path was not tested"
    );
    // Exactly once: one payment and one outcome per order.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let payments = app.payments().await;
    assert_eq!(payments.len(), 40);
    assert_eq!(
        payments.iter().map(|(id, _)| *id).collect::<HashSet<_>>(),
        orders
    );
    assert_eq!(payments.iter().filter(|(_, s)| s == "declined").count(), 10);
    let outcomes: Vec<Uuid> = app
        .events(streams::PAYMENT)
        .await
        .into_iter()
        .map(|(_, data)| data["order_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 40);
    assert_eq!(outcomes.into_iter().collect::<HashSet<_>>(), orders);
}
