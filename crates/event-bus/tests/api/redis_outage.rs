//! Redis going away mid-run: outbox rows wait, consumers reconnect, a lost group is
//! recreated, and nothing is lost or applied twice.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::common::{bus, config, effect, effects, envelope, eventually};
use event_bus::{Consumer, Publisher, Relay, RelayConfig, Wake};
use test_support::TestRedis;
use tokio_util::sync::CancellationToken;

async fn enqueue(pool: &sqlx::PgPool, stream: &str, range: std::ops::Range<usize>) {
    let mut tx = event_bus::Tx::begin(pool).await.unwrap();
    for n in range {
        tx.enqueue(&event_bus::Stream::single(stream), &envelope(n))
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_redis_is_down_are_published_and_applied_once_it_returns() {
    let bus = bus().await;
    let mut redis_server = TestRedis::start().await;
    let redis = common::connect(&redis_server.url()).await;
    let cancel = CancellationToken::new();
    let relay = Relay::new(
        bus.pool.clone(),
        Publisher::new(redis.clone(), 100_000),
        RelayConfig {
            poll_interval: Duration::from_millis(200),
            max_backoff: Duration::from_millis(300),
            ..RelayConfig::default()
        },
        Wake::new(),
    );
    let relay_task = tokio::spawn(relay.run(cancel.clone()));
    let applied = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(
        service_kit::redis::Client::open(&redis_server.url()).unwrap(),
        config("outage", &bus.stream),
        effect(bus.pool.clone(), "outage", applied),
    );
    let consumer_task = tokio::spawn(consumer.run(cancel.clone()));

    enqueue(&bus.pool, &bus.stream, 0..20).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            effects(&bus.pool, "outage").await.1 == 20
        })
        .await
    );

    redis_server.stop().await;
    enqueue(&bus.pool, &bus.stream, 20..40).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let waiting: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&bus.pool)
    .await
    .unwrap();
    assert_eq!(
        waiting, 20,
        "rows were marked published while Redis was down"
    );

    redis_server.start_again().await;
    let all = eventually(Duration::from_secs(20), || async {
        effects(&bus.pool, "outage").await.1 == 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    relay_task.await.unwrap();
    consumer_task.await.unwrap();
    assert!(all, "{:?}", effects(&bus.pool, "outage").await);
    assert_eq!(effects(&bus.pool, "outage").await, (40, 40));
}

#[tokio::test]
async fn a_consumer_recreates_its_group_after_redis_lost_it() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let applied = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(
        bus.client(),
        config("regroup", &bus.stream),
        effect(bus.pool.clone(), "regroup", applied),
    );
    let task = tokio::spawn(consumer.run(cancel.clone()));
    publisher.publish(&bus.stream, &envelope(1)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            effects(&bus.pool, "regroup").await.1 == 1
        })
        .await
    );

    // As after a flush: the stream and its groups are gone.
    let mut redis = bus.redis.clone();
    let _: () = redis::cmd("DEL")
        .arg(&bus.stream)
        .query_async(&mut redis)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.publish(&bus.stream, &envelope(2)).await.unwrap();
    let recovered = eventually(Duration::from_secs(10), || async {
        effects(&bus.pool, "regroup").await.1 == 2
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(recovered, "the consumer did not recreate its group");
    assert_eq!(effects(&bus.pool, "regroup").await, (2, 2));
}
