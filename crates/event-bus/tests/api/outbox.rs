//! The outbox: events committed with state are published; rolled back ones never are.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{bus, envelope, eventually};
use event_bus::relay::Pass;
use event_bus::{Publisher, Relay, RelayConfig, Wake};
use tokio_util::sync::CancellationToken;

async fn stream_len(redis: &service_kit::redis::Connection, stream: &str) -> usize {
    let mut redis = redis.clone();
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_committed_event_is_published_and_a_rolled_back_one_never_is() {
    let bus = bus().await;
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.enqueue(&bus.single(), &envelope(1)).unwrap();
    tx.commit().await.unwrap();
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.enqueue(&bus.single(), &envelope(2)).unwrap();
    tx.rollback().await.unwrap();

    let relay = Relay::new(
        bus.pool.clone(),
        Publisher::new(bus.redis.clone(), 10_000),
        RelayConfig::default(),
        Wake::new(),
    );
    assert_eq!(relay.publish_pending().await.unwrap(), Pass::Published(1));
    assert_eq!(relay.publish_pending().await.unwrap(), Pass::Published(0));
    assert_eq!(stream_len(&bus.redis, &bus.stream).await, 1);
}

#[tokio::test]
async fn what_a_transaction_does_after_commit_it_does_once_committed_and_never_otherwise() {
    let bus = bus().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counting = || {
        let ran = Arc::clone(&ran);
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };

    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.after_commit(counting());
    tx.enqueue(&bus.single(), &envelope(1)).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "ran before the commit");
    tx.commit().await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the committed one ran once");

    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.after_commit(counting());
    tx.rollback().await.unwrap();
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.after_commit(counting());
    drop(tx);
    // The commit fails: the same event twice is two outbox rows of one id.
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.after_commit(counting());
    let event = envelope(2);
    tx.enqueue(&bus.single(), &event).unwrap();
    tx.enqueue(&bus.single(), &event).unwrap();
    assert!(tx.commit().await.is_err(), "two rows of one id committed");
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "a rolled back, dropped or failed transaction ran its action"
    );
}

#[tokio::test]
async fn the_running_relay_publishes_within_moments_of_a_commit() {
    let bus = bus().await;
    let wake = Wake::new();
    let relay = Relay::new(
        bus.pool.clone(),
        Publisher::new(bus.redis.clone(), 10_000),
        RelayConfig {
            poll_interval: Duration::from_secs(30),
            ..RelayConfig::default()
        },
        wake.clone(),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.enqueue(&bus.single(), &envelope(1)).unwrap();
    wake.commit(tx).await.unwrap();
    // The relay's sweep takes only rows older than the poll interval (30 s): only the
    // wake can make this quick.
    let published = eventually(Duration::from_secs(3), || async {
        stream_len(&bus.redis, &bus.stream).await == 1
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(published);
}

#[tokio::test]
async fn two_relays_on_one_database_publish_every_row_once_in_order() {
    let bus = bus().await;
    let events: Vec<_> = (0..2_000).map(envelope).collect();
    for chunk in events.chunks(100) {
        let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
        for event in chunk {
            tx.enqueue(&bus.single(), event).unwrap();
        }
        tx.commit().await.unwrap();
    }
    let config = RelayConfig {
        batch_size: 50,
        ..RelayConfig::default()
    };
    let cancel = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(
                bus.pool.clone(),
                Publisher::new(bus.redis.clone(), 100_000),
                config.clone(),
                Wake::new(),
            );
            tokio::spawn(relay.run(cancel.clone()))
        })
        .collect();
    let all = eventually(Duration::from_secs(30), || async {
        stream_len(&bus.redis, &bus.stream).await >= 2_000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    for relay in relays {
        relay.await.unwrap();
    }
    assert!(all);
    assert_eq!(
        stream_len(&bus.redis, &bus.stream).await,
        2_000,
        "a row was published twice"
    );

    let entries = test_support::streams::entries(&bus.stream).await;
    let published: Vec<uuid::Uuid> = entries
        .iter()
        .map(|entry| {
            let json: String = entry.get("envelope").unwrap();
            serde_json::from_str::<event_bus::Envelope>(&json)
                .unwrap()
                .id
        })
        .collect();
    let committed: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    assert_eq!(published, committed, "published out of commit order");
    let unpublished: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&bus.pool)
    .await
    .unwrap();
    assert_eq!(unpublished, 0);
}

#[tokio::test]
async fn published_rows_older_than_the_retention_are_pruned_and_unpublished_ones_kept() {
    let bus = bus().await;
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    for n in 0..3 {
        tx.enqueue(&bus.single(), &envelope(n)).unwrap();
    }
    tx.commit().await.unwrap();
    let relay = Relay::new(
        bus.pool.clone(),
        Publisher::new(bus.redis.clone(), 10_000),
        RelayConfig {
            retention: Duration::from_secs(3600),
            ..RelayConfig::default()
        },
        Wake::new(),
    );
    relay.publish_pending().await.unwrap();
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    tx.enqueue(&bus.single(), &envelope(3)).unwrap();
    tx.commit().await.unwrap();
    // Two of the published rows are past the retention.
    sqlx::query!("UPDATE outbox SET published_at = now() - interval '2 hours' WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NOT NULL ORDER BY seq LIMIT 2)")
        .execute(&bus.pool)
        .await
        .unwrap();
    assert_eq!(relay.prune().await.unwrap(), 2);
    let left = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE published_at IS NOT NULL) AS "published!",
                  count(*) FILTER (WHERE published_at IS NULL) AS "waiting!"
             FROM outbox"#
    )
    .fetch_one(&bus.pool)
    .await
    .unwrap();
    assert_eq!((left.published, left.waiting), (1, 1));
}
