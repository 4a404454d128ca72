//! The order saga end to end: the four services as real HTTP servers on real
//! PostgreSQL and Redis, driven only through their APIs.

use crate::common;

use std::collections::HashMap;

use crate::common::{SETTLE, assert_consistent, eventually, start};
use serde_json::Value;
use test_support::assert_problem;

#[tokio::test]
async fn an_order_with_two_lines_is_confirmed_stock_goes_down_and_one_payment_captures_its_total() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(250, 10).await;
    let b = system.product(1_000, 5).await;

    let id = system.order(&buyer, &[(&a, 3), (&b, 2)], "tok_visa").await;
    let order = system.settled(&id).await;

    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["cancel_reason"], Value::Null);
    assert_eq!(order["total_cents"], 3 * 250 + 2 * 1_000);
    assert_eq!(order["items"][0]["unit_price_cents"], 250);
    assert_eq!(
        (system.available(&a).await, system.available(&b).await),
        (7, 3)
    );
    let payments = system.payments_of(&buyer).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["order_id"], id.as_str());
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(payments[0]["amount_cents"], 2_750);
    assert_eq!(payments[0]["currency"], "USD");
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_gives_the_stock_back() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(500, 4).await;

    let id = system.order(&buyer, &[(&a, 3)], "tok_declined").await;
    let order = system.settled(&id).await;

    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "payment_declined");
    assert!(
        eventually(SETTLE, || async { system.available(&a).await == 4 }).await,
        "the held stock is released"
    );
    let payments = system.payments_for(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "declined");
}

#[tokio::test]
async fn an_order_for_more_than_is_in_stock_is_cancelled_out_of_stock_and_never_charged() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(500, 10).await;
    let scarce = system.product(500, 1).await;

    let id = system
        .order(&buyer, &[(&a, 2), (&scarce, 2)], "tok_visa")
        .await;
    let order = system.settled(&id).await;

    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "out_of_stock");
    assert_eq!(
        (system.available(&a).await, system.available(&scarce).await),
        (10, 1),
        "no line is held"
    );
    assert!(system.payments_for(&id).await.is_empty());
}

#[tokio::test]
async fn fifty_buyers_racing_for_ten_units_leave_ten_confirmed_and_forty_out_of_stock() {
    let system = start().await;
    let a = system.product(100, 10).await;
    let buyers = system.users(50).await;

    let line = [(a.as_str(), 1)];
    let ids: Vec<String> = futures::future::join_all(
        buyers
            .iter()
            .map(|buyer| system.order(buyer, &line, "tok_visa")),
    )
    .await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let order = system.settled(id).await;
        let outcome = match order["cancel_reason"].as_str() {
            Some(reason) => reason.to_owned(),
            None => order["status"].as_str().unwrap().to_owned(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }

    assert_eq!(outcomes.get("confirmed"), Some(&10), "{outcomes:?}");
    assert_eq!(outcomes.get("out_of_stock"), Some(&40), "{outcomes:?}");
    assert_eq!(system.available(&a).await, 0);
    let payments = system.all_payments().await;
    assert_eq!(payments.len(), 10);
    assert!(payments.iter().all(|p| p["status"] == "succeeded"));
}

#[tokio::test]
async fn cancelling_a_confirmed_order_refunds_it_and_restores_the_stock() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(700, 5).await;
    let id = system.order(&buyer, &[(&a, 2)], "tok_visa").await;
    assert_eq!(system.settled(&id).await["status"], "confirmed");
    assert_eq!(system.available(&a).await, 3);

    let response = system.cancel(&buyer, &id).await;
    assert_eq!(response.status(), 202);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "cancelled_by_user");

    assert!(
        eventually(SETTLE, || async {
            system.available(&a).await == 5
                && system.payments_for(&id).await[0]["status"] == "refunded"
        })
        .await,
        "stock restored and payment refunded"
    );
    let again = system.cancel(&buyer, &id).await;
    assert_problem(again, 409).await;
}

#[tokio::test]
async fn cancelling_a_pending_order_leaves_it_holding_no_stock_and_no_money() {
    let system = start().await;
    let buyer = system.user().await;
    let a = system.product(300, 5).await;
    let id = system.order(&buyer, &[(&a, 1)], "tok_visa").await;
    // Cancelled at once: whichever saga step each service reaches first, the order
    // ends cancelled with nothing held and nothing captured.
    let response = system.cancel(&buyer, &id).await;
    assert_eq!(response.status(), 202);

    assert!(
        eventually(SETTLE, || async {
            let payments = system.payments_for(&id).await;
            system.available(&a).await == 5 && payments.iter().all(|p| p["status"] == "refunded")
        })
        .await
    );
    let order = system.get_order(&buyer, &id).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "cancelled_by_user");
}

#[tokio::test]
async fn a_mixed_run_is_consistent() {
    let system = start().await;
    let buyers = system.users(3).await;
    let a = system.product(100, 4).await;
    let b = system.product(200, 100).await;
    let mut ids = Vec::new();
    for (i, buyer) in buyers.iter().enumerate() {
        ids.push(system.order(buyer, &[(&a, 2), (&b, 1)], "tok_visa").await);
        ids.push(
            system
                .order(
                    buyer,
                    &[(&b, 3)],
                    if i == 0 { "tok_declined" } else { "tok_visa" },
                )
                .await,
        );
    }
    for id in &ids {
        system.settled(id).await;
    }
    assert_consistent(&system, &HashMap::from([(a, 4), (b, 100)])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_moved_together_take_effect_once_though_an_event_among_them_always_fails() {
    use std::time::Duration;

    use contracts::events::{streams, types};
    use event_bus::Envelope;

    let mut system = start().await;
    let buyer = system.user().await;
    let product = system.product(100, 1_000).await;
    // No payment service: the orders wait, reserved, for the outcomes sent below.
    system.payment.kill();
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(system.order(&buyer, &[(&product, 1)], "tok_visa").await);
    }
    let reserved = eventually(Duration::from_secs(20), || async {
        common::events(&system, streams::INVENTORY)
            .await
            .iter()
            .filter(|(t, _)| t == types::INVENTORY_RESERVED)
            .count()
            == 25
    })
    .await;
    assert!(reserved);

    // 20 payments succeeded and 5 declined, sent together, with an outcome that can
    // never be applied three times among them and one event delivered twice.
    let outcome = |id: &str| {
        serde_json::json!({"order_id": id, "payment_id": uuid::Uuid::new_v4(),
            "user_id": buyer.id, "amount_cents": 100, "currency": "USD"})
    };
    let mut events: Vec<Envelope> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let kind = if n < 20 {
                types::PAYMENT_SUCCEEDED
            } else {
                types::PAYMENT_DECLINED
            };
            Envelope::new(kind, "tests", &outcome(id)).unwrap()
        })
        .collect();
    for at in [3, 12, 22] {
        let broken = serde_json::json!({"order_id": "not an id"});
        events.insert(
            at,
            Envelope::new(types::PAYMENT_SUCCEEDED, "tests", &broken).unwrap(),
        );
    }
    events.push(events[0].clone());
    event_bus::Publisher::new(test_support::redis().await, 10_000)
        .publish_batch(&system.stream(streams::PAYMENT), &events)
        .await
        .unwrap();

    assert!(system.all_settled(Duration::from_secs(20)).await);
    let dead = event_bus::dead_letter_stream(&system.stream(streams::PAYMENT));
    let dead_lettered = eventually(Duration::from_secs(20), || async {
        let groups: Vec<String> = test_support::streams::entries(&dead)
            .await
            .iter()
            .filter_map(|e| e.get::<String>("group"))
            .collect();
        groups.iter().filter(|g| *g == "order").count() == 3
    })
    .await;
    assert!(
        dead_lettered,
        "the broken outcomes were not dead-lettered by the order service"
    );
    let metrics =
        test_support::http::text(system.client.get(format!("{}/metrics", system.order.url())))
            .await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("events_batches_split_total") && !l.ends_with(" 0")),
        "no batch held a broken outcome: the batched path was not tested\n{metrics}"
    );

    let statuses: Vec<Value> = system.all_orders().await;
    let confirmed = statuses
        .iter()
        .filter(|o| o["status"] == "confirmed")
        .count();
    let declined = statuses
        .iter()
        .filter(|o| o["status"] == "cancelled" && o["cancel_reason"] == "payment_declined")
        .count();
    assert_eq!((confirmed, declined), (20, 5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emitted = common::events(&system, streams::ORDER).await;
    let of = |kind: &str| emitted.iter().filter(|(t, _)| t == kind).count();
    assert_eq!(
        of(types::ORDER_CONFIRMED),
        20,
        "an order was confirmed twice or not at all"
    );
    assert_eq!(of(types::ORDER_CANCELLED), 5);
    // The saga's end-to-end time is recorded once per order, as its move commits: the
    // event delivered twice and the batch split around the broken ones add nothing.
    let metrics =
        test_support::http::text(system.client.get(format!("{}/metrics", system.order.url())))
            .await;
    let settled = |outcome: &str| -> f64 {
        let label = format!("outcome=\"{outcome}\"");
        metrics
            .lines()
            .filter(|l| l.starts_with("orders_settled_seconds_count") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(
        (settled("confirmed"), settled("cancelled")),
        (20.0, 5.0),
        "orders_settled_seconds counted an order twice or not at all\n{metrics}"
    );
}
