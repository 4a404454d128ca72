//! The payment service scaled out and in as KEDA scales it on its lag: replicas of the
//! binary started while events flow, then stopped with SIGTERM (a scale-down) and one
//! with SIGKILL (a pod killed after its grace period), with nothing lost or doubled.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use contracts::events::{InventoryReserved, streams, types};
use event_bus::{Envelope, Publisher};
use redis::Value;
use test_support::{ServiceProcess, StreamKeys, TestDatabase, eventually};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");
const ORDERS: usize = 400;

fn reserved() -> Envelope {
    let data = InventoryReserved {
        order_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        total_cents: 990,
        currency: "USD".into(),
        payment_method: "card".into(),
    };
    Envelope::new(types::INVENTORY_RESERVED, "tests", &data).unwrap()
}

/// A replica: each charge takes 300 ms at the provider and it holds four entries at a
/// time, so entries stay pending long enough to be seen; failed or abandoned entries are
/// claimed by another replica after a second.
fn replica(db: &TestDatabase, keys: &StreamKeys) -> ServiceProcess {
    let env = HashMap::from(
        [
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", db.url()),
            ("REDIS_URL", &test_support::redis_url()),
            ("PAYMENT_SERVICE_KEY", "scaling-test-payment-key"),
            ("EVENT_STREAM_PREFIX", keys.prefix()),
            ("EVENT_CONSUMER_CONCURRENCY", "4"),
            ("EVENT_RETRY_AFTER_MS", "1000"),
            ("PAYMENT_PROVIDER_DELAY_MS", "300"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "10"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    ServiceProcess::start(BINARY, &env)
}

/// The name of the consumer `process` reads the inventory stream as, from its log.
async fn consumer_of(process: &ServiceProcess) -> String {
    let mut found = None;
    let started = eventually(Duration::from_secs(20), || {
        found = process.log_lines().into_iter().find_map(|line| {
            (line["message"] == "consumer started")
                .then(|| line["consumer"].as_str().map(str::to_owned))?
        });
        let done = found.is_some();
        async move { done }
    })
    .await;
    assert!(started, "no consumer started: {:?}", process.raw_lines());
    found.unwrap()
}

/// Entries of the payment group pending on the inventory stream, by consumer.
async fn pending_by_consumer(stream: &str) -> HashMap<String, i64> {
    let mut redis = test_support::redis().await;
    let consumers: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg("payment")
        .query_async(&mut redis)
        .await
        .unwrap();
    consumers
        .into_iter()
        .filter_map(|mut consumer| {
            let name: String = redis::from_redis_value(consumer.remove("name")?).ok()?;
            let pending: i64 = redis::from_redis_value(consumer.remove("pending")?).ok()?;
            Some((name, pending))
        })
        .collect()
}

#[tokio::test]
async fn scaled_from_one_to_four_replicas_and_back_while_orders_flow_every_order_is_charged_once() {
    let db = TestDatabase::create().await;
    let keys = StreamKeys::new();
    let inventory = format!("{}{}", keys.prefix(), streams::INVENTORY);
    let payments = format!("{}{}", keys.prefix(), streams::PAYMENT);
    let mut first = replica(&db, &keys);
    first.wait_until_listening(Duration::from_secs(30)).await;
    consumer_of(&first).await;

    // The orders arrive over about six seconds, while the replicas come and go.
    let publisher = Publisher::new(test_support::redis().await, 100_000);
    let events: Vec<Envelope> = (0..ORDERS).map(|_| reserved()).collect();
    let orders: HashSet<Uuid> = events
        .iter()
        .map(|e| e.decode::<contracts::events::OrderRef>().unwrap().order_id)
        .collect();
    let flow = tokio::spawn({
        let inventory = inventory.clone();
        async move {
            for chunk in events.chunks(ORDERS / 24) {
                publisher.publish_batch(&inventory, chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });

    // Scale out to four.
    let mut added = Vec::new();
    for _ in 0..3 {
        let mut process = replica(&db, &keys);
        process.wait_until_listening(Duration::from_secs(30)).await;
        let name = consumer_of(&process).await;
        added.push((process, name));
    }

    // Scale in to one while orders still arrive: two replicas drain on SIGTERM, one is
    // killed holding entries.
    let (mut killed, killed_name) = added.pop().unwrap();
    let held = eventually(Duration::from_secs(10), || {
        let inventory = inventory.clone();
        let name = killed_name.clone();
        async move {
            pending_by_consumer(&inventory)
                .await
                .get(&name)
                .copied()
                .unwrap_or(0)
                > 0
        }
    })
    .await;
    assert!(
        held,
        "the replica to kill held no entry: the reclaim would go untested"
    );
    killed.kill().await;
    for (process, _) in &added {
        process.terminate();
    }
    flow.await.unwrap();
    for (process, _) in &mut added {
        let status = process
            .wait_for_exit(Duration::from_secs(15))
            .await
            .expect("a replica drains and exits on SIGTERM");
        assert!(status.success(), "exit status {status}");
    }

    // The one replica left finishes the rest, the killed one's entries included.
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let settled = eventually(Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM payments"#)
                .fetch_one(&pool)
                .await
                .unwrap()
                == ORDERS as i64
        }
    })
    .await;
    assert!(
        settled,
        "not every order was charged: {:?}",
        first.raw_lines().last()
    );
    let charged: HashSet<Uuid> = sqlx::query_scalar!("SELECT order_id FROM payments")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(charged, orders, "every order charged, and only those");

    // One outcome event per order on the payment stream: nothing published twice.
    let nothing_pending = eventually(Duration::from_secs(15), || {
        let inventory = inventory.clone();
        async move {
            pending_by_consumer(&inventory)
                .await
                .values()
                .all(|n| *n == 0)
        }
    })
    .await;
    assert!(
        nothing_pending,
        "{:?}",
        pending_by_consumer(&inventory).await
    );
    let outcomes = test_support::streams::envelopes(&payments).await;
    let decided: Vec<Uuid> = outcomes
        .iter()
        .map(|e| Uuid::parse_str(e["data"]["order_id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(decided.len(), ORDERS, "one outcome per order");
    assert_eq!(decided.into_iter().collect::<HashSet<_>>(), orders);
    first.terminate();
    assert!(first.wait_for_exit(Duration::from_secs(15)).await.is_some());
}
