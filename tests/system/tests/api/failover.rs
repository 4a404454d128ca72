//! The whole system on a Redis Cluster of its own (3 masters, a replica each, streams in
//! 3 partitions, the outbox waiting for a replica), and a master killed (SIGKILL) while
//! 200 orders go through the saga: the replica takes over, publishers and consumers
//! follow the new topology, and nothing is lost or applied twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use system_tests::{PATIENCE, System};
use test_support::{TestRedisCluster, eventually};

const ORDERS: usize = 200;
const STOCK: i64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_master_killed_during_200_orders_loses_none_and_applies_none_twice() {
    let mut cluster = TestRedisCluster::start(3, 1).await;
    let url = cluster.url();
    let system = System::start(&[
        ("REDIS_URL", url.as_str()),
        ("EVENT_PARTITIONS", "3"),
        ("EVENT_REPLICA_ACKS", "1"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ])
    .await;
    let admin = system.admin().await;
    let mug = system.product(&admin, 500, STOCK).await;
    let ada = system.user("Ada").await;
    // The victim: the master of one partition of the order stream, where every saga
    // starts.
    let partition = format!("{{{}events:order:0}}", system.redis_prefix());
    let victim = cluster.master_of(&partition, 0).await;
    let witness = (0..6).find(|node| *node != victim).unwrap();

    // 200 one-unit orders from 8 clients. Creating an order needs no Redis (the event
    // waits in the outbox), so every one is accepted; a client retries a 5xx with the
    // same Idempotency-Key, as a careful client does.
    let accepted = AtomicUsize::new(0);
    let place = |n: usize| {
        let (system, ada, mug, accepted) = (&system, &ada, &mug, &accepted);
        async move {
            let key = format!("order-{n}");
            loop {
                let response = system
                    .request(Method::POST, "/orders", Some(&ada.token))
                    .header("Idempotency-Key", &key)
                    .json(&json!({"items": [{"product_id": mug, "quantity": 1}],
                                  "payment_method": "tok_visa"}))
                    .send()
                    .await
                    .unwrap_or_else(|error| panic!("order {n}: no answer: {error:?}"));
                match response.status().as_u16() {
                    202 => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let order: Value = response.json().await.unwrap();
                        return order["id"].as_str().unwrap().to_owned();
                    }
                    status if status >= 500 => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => panic!("order {n}: unexpected {other}"),
                }
            }
        }
    };
    let orders = futures::stream::iter(0..ORDERS)
        .map(place)
        .buffer_unordered(8)
        .collect::<Vec<String>>();
    let crash = async {
        let started = eventually(PATIENCE, || async {
            accepted.load(Ordering::SeqCst) >= ORDERS / 3
        })
        .await;
        assert!(started, "orders were being accepted");
        cluster.kill(victim).await;
        let killed = Instant::now();
        assert!(
            cluster.wait_for_failover(victim, witness).await,
            "the dead master's replica took over"
        );
        (killed, killed.elapsed())
    };
    let (ids, (killed, failover)) = tokio::join!(orders, crash);
    assert_eq!(ids.len(), ORDERS);

    // Every accepted order is confirmed: no event was lost on the way.
    for id in &ids {
        let order = system.settled(&ada.token, id).await;
        assert_eq!(order["status"], "confirmed", "order {id}: {order}");
    }
    let settled = killed.elapsed();
    println!(
        "failover: the master of {partition} killed; its replica served its slots after \
         {failover:?}; all {ORDERS} orders confirmed {settled:?} after the kill"
    );

    // The stock is exact: each reservation applied once.
    let product = system.get(&format!("/products/{mug}"), &ada.token).await;
    assert_eq!(product["available"], STOCK - ORDERS as i64);
    // One payment per order, and one email per order.
    let payments = system.get("/payments?limit=1000", &ada.token).await;
    let payments = payments["data"].as_array().unwrap();
    let paid: HashSet<&str> = payments
        .iter()
        .map(|payment| payment["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(payments.len(), ORDERS, "one payment per order");
    assert_eq!(paid, ids.iter().map(String::as_str).collect());
    let emailed = eventually(PATIENCE, || async { confirmations(&system) >= ORDERS }).await;
    assert!(emailed, "every order's confirmation was emailed");
    // Give a duplicate the time to arrive, then count again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        confirmations(&system),
        ORDERS,
        "no confirmation emailed twice"
    );
}

/// Confirmation emails received.
fn confirmations(system: &System) -> usize {
    system
        .smtp
        .received()
        .iter()
        .filter(|mail| {
            mail.header("Subject")
                .is_some_and(|subject| subject.ends_with("confirmed"))
        })
        .count()
}
