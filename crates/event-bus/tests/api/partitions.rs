//! Partitioned streams and publishing that waits for replicas: one key's events stay in
//! one partition, in order, every partition is read; a batch no replica acknowledged is
//! not counted published.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{bus, eventually};
use event_bus::relay::Pass;
use event_bus::{Consumer, Envelope, Publisher, Relay, RelayConfig, Stream, Wake};
use test_support::TestRedis;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u16 = 4;
const KEYS: usize = 20;
const EVENTS: usize = 400;

#[tokio::test]
async fn a_partitioned_streams_events_keep_to_their_keys_partition_in_order_and_all_are_read() {
    let bus = bus().await;
    let stream = Stream::new(bus.stream.clone(), PARTITIONS);
    let partitions = stream.partitions();
    let _tidy = Tidy(partitions.clone());

    // Through the outbox, in several transactions, as services publish.
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(50) {
        let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
        for &n in chunk {
            let event = Envelope::new("test.happened", "tests", &serde_json::json!({"seq": n}))
                .unwrap()
                .keyed(format!("k{}", n % KEYS));
            tx.enqueue(&stream, &event).unwrap();
        }
        tx.commit().await.unwrap();
    }
    let relay = Relay::new(
        bus.pool.clone(),
        Publisher::new(bus.redis.clone(), 10_000),
        RelayConfig::default(),
        Wake::new(),
    );
    while relay.publish_pending().await.unwrap() != Pass::Published(0) {}

    // Each key's events are on one partition, and the keys use every partition.
    let mut partition_of: HashMap<String, String> = HashMap::new();
    let mut total = 0;
    for partition in &partitions {
        let envelopes = test_support::streams::envelopes(partition).await;
        assert!(!envelopes.is_empty(), "{partition} holds no event");
        total += envelopes.len();
        for envelope in envelopes {
            let key = envelope["partitionkey"].as_str().unwrap().to_owned();
            let previous = partition_of.insert(key.clone(), partition.clone());
            assert!(
                previous.is_none_or(|p| p == *partition),
                "{key} is on two partitions"
            );
        }
    }
    assert_eq!(total, EVENTS);

    // One consumer reads every partition; each key's events are handled in order.
    let handled = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let record = handled.clone();
    let mut config = event_bus::ConsumerConfig::new(
        "partitioned",
        &partitions.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    config.block = Duration::from_millis(100);
    config.order_key = Some(|event| event.key.clone());
    let consumer = Consumer::new(bus.client(), config, move |event: Envelope| {
        let record = record.clone();
        async move {
            let seq = event.data["seq"].as_u64().unwrap();
            // Uneven work, so unordered handling would show.
            tokio::time::sleep(Duration::from_micros((seq * 7919) % 2000)).await;
            record.lock().unwrap().push((event.key.unwrap(), seq));
            Ok(())
        }
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(consumer.run(cancel.clone()));
    assert!(
        eventually(Duration::from_secs(20), || async {
            handled.lock().unwrap().len() >= EVENTS
        })
        .await,
        "every event was handled"
    );
    cancel.cancel();
    task.await.unwrap();
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), EVENTS, "none twice");
    for key in (0..KEYS).map(|k| format!("k{k}")) {
        let seqs: Vec<u64> = handled
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs.len(), EVENTS / KEYS);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
}

#[tokio::test]
async fn a_batch_no_connected_replica_acknowledges_is_not_counted_published() {
    let master = TestRedis::start().await;
    let replica = TestRedis::start_replica_of(&master).await;
    let redis = service_kit::redis::Client::open(&master.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let publisher = Publisher::new(redis.clone(), 1000).with_replica_acks(1);
    let event = |n: u64| Envelope::new("test.happened", "tests", &serde_json::json!({"n": n}));

    // With the replica up, publishing waits for it and succeeds.
    publisher
        .publish("events", &event(1).unwrap())
        .await
        .unwrap();

    // A replica that is connected but acknowledges nothing (stalled): the batch is
    // appended on the master but reported unpublished, so the outbox sends it again.
    replica.pause();
    let error = publisher.publish("events", &event(2).unwrap()).await;
    replica.resume();
    let error = service_kit::telemetry::causes(&error.unwrap_err());
    assert!(error.contains("did not acknowledge"), "{error}");

    // Back in step: published again.
    publisher
        .publish("events", &event(3).unwrap())
        .await
        .unwrap();

    // With no replica connected at all there is nothing to wait for: the master's
    // own copy is all there is (its replica is the master that died).
    drop(replica);
    let mut connection = redis.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut connection = connection.clone();
            async move {
                let role: redis::Value = redis::cmd("ROLE")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                matches!(role, redis::Value::Array(ref parts)
                    if matches!(parts.get(2), Some(redis::Value::Array(r)) if r.is_empty()))
            }
        })
        .await,
        "the master noticed its replica is gone"
    );
    for n in 4..7 {
        publisher
            .publish("events", &event(n).unwrap())
            .await
            .unwrap();
    }
    let length: usize = redis::cmd("XLEN")
        .arg("events")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        length, 6,
        "every attempt was appended, the unacknowledged one too"
    );
    let seen: HashSet<u64> = test_entries(&mut connection).await;
    assert_eq!(seen, (1..7).collect());
}

async fn test_entries(connection: &mut service_kit::redis::Connection) -> HashSet<u64> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("events")
        .arg("-")
        .arg("+")
        .query_async(connection)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get(event_bus::ENVELOPE_FIELD).unwrap();
            let envelope: Envelope = serde_json::from_str(&json).unwrap();
            envelope.data["n"].as_u64().unwrap()
        })
        .collect()
}

/// Deletes the partitions when the test ends.
struct Tidy(Vec<String>);

impl Drop for Tidy {
    fn drop(&mut self) {
        test_support::delete_keys(&self.0);
    }
}
