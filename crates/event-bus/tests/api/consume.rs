//! Consumer groups with the inbox: every event applied exactly once per group.
//!
//! One file: the consumer's delivery guarantees, each test a guarantee over the same
//! harness; split by part they would repeat it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Bus, bus, config, effect, effects, envelope, eventually};
use event_bus::ops::stream_report;
use event_bus::{Consumer, Publisher};
use tokio_util::sync::CancellationToken;

/// Whether `group` has every entry of the bus's stream handled: none pending, none
/// left to give it.
async fn drained(bus: &Bus, group: &str) -> bool {
    let report = stream_report(&bus.redis, &bus.stream, group).await.unwrap();
    report.pending == 0 && report.lag == Some(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_applied_exactly_once_by_each_of_two_groups() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 100_000);
    let events: Vec<_> = (0..10_000).map(envelope).collect();
    for batch in events.chunks(500) {
        publisher.publish_batch(&bus.stream, batch).await.unwrap();
    }

    let cancel = CancellationToken::new();
    let per_consumer: Vec<Arc<AtomicUsize>> =
        (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut tasks = Vec::new();
    for applied in &per_consumer {
        let consumer = Consumer::new(
            bus.client(),
            config("alpha", &bus.stream),
            effect(bus.pool.clone(), "alpha", applied.clone()),
        );
        tasks.push(tokio::spawn(consumer.run(cancel.clone())));
    }
    let beta_applied = Arc::new(AtomicUsize::new(0));
    let beta = Consumer::new(
        bus.client(),
        config("beta", &bus.stream),
        effect(bus.pool.clone(), "beta", beta_applied.clone()),
    );
    tasks.push(tokio::spawn(beta.run(cancel.clone())));

    let all_applied = eventually(Duration::from_secs(90), || async {
        effects(&bus.pool, "alpha").await.1 == 10_000
            && effects(&bus.pool, "beta").await.1 == 10_000
    })
    .await;
    // Give any duplicate delivery time to show up before looking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        all_applied,
        "alpha {:?}, beta {:?}",
        effects(&bus.pool, "alpha").await,
        effects(&bus.pool, "beta").await
    );
    assert_eq!(effects(&bus.pool, "alpha").await, (10_000, 10_000));
    assert_eq!(effects(&bus.pool, "beta").await, (10_000, 10_000));
    let shares: Vec<usize> = per_consumer
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert!(
        shares.iter().all(|n| *n > 0),
        "a consumer got no work: {shares:?}"
    );
    // The database holds exactly one effect per event (asserted above). The counters
    // can fall short of it: a handler abandoned at its timeout just after its commit
    // is not counted, and its redelivery finds the event done. They never exceed it.
    let counted = shares.iter().sum::<usize>();
    assert!(
        (9_900..=10_000).contains(&counted),
        "{counted} handlers completed"
    );
    assert_eq!(
        stream_report(&bus.redis, &bus.stream, "alpha")
            .await
            .unwrap()
            .pending,
        0,
        "entries left pending"
    );
}

#[tokio::test]
async fn the_same_envelope_published_three_times_takes_effect_once() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let event = envelope(1);
    for _ in 0..3 {
        publisher.publish(&bus.stream, &event).await.unwrap();
    }
    let applied = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(
        bus.client(),
        config("once", &bus.stream),
        effect(bus.pool.clone(), "once", applied.clone()),
    );
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let drained = eventually(Duration::from_secs(10), || async {
        drained(&bus, "once").await
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(drained);
    assert_eq!(effects(&bus.pool, "once").await, (1, 1));
    assert_eq!(applied.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_consumer_that_died_holding_entries_has_them_reclaimed_by_another() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let events: Vec<_> = (0..20).map(envelope).collect();
    publisher.publish_batch(&bus.stream, &events).await.unwrap();

    // A consumer takes every entry, then dies before acknowledging any.
    let doomed = Consumer::new(bus.client(), config("reclaim", &bus.stream), |_| async {
        std::future::pending::<Result<(), event_bus::HandlerError>>().await
    });
    doomed.ensure_groups().await.unwrap();
    let doomed_cancel = CancellationToken::new();
    let doomed_task = tokio::spawn(doomed.run(doomed_cancel.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            stream_report(&bus.redis, &bus.stream, "reclaim")
                .await
                .unwrap()
                .pending
                == 20
        })
        .await
    );
    doomed_task.abort();

    let applied = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let survivor = Consumer::new(
        bus.client(),
        config("reclaim", &bus.stream),
        effect(bus.pool.clone(), "reclaim", applied.clone()),
    );
    let task = tokio::spawn(survivor.run(cancel.clone()));
    let done = eventually(Duration::from_secs(10), || async {
        effects(&bus.pool, "reclaim").await.1 == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    task.await.unwrap();
    assert!(done, "{:?}", effects(&bus.pool, "reclaim").await);
    assert_eq!(effects(&bus.pool, "reclaim").await, (20, 20));
    assert_eq!(
        stream_report(&bus.redis, &bus.stream, "reclaim")
            .await
            .unwrap()
            .pending,
        0
    );
}

#[tokio::test]
async fn shutdown_lets_handlers_in_flight_finish_and_acknowledges_them() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    publisher
        .publish_batch(&bus.stream, &(0..5).map(envelope).collect::<Vec<_>>())
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s, f) = (started.clone(), finished.clone());
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(bus.client(), config("drain", &bus.stream), move |_| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            started.load(Ordering::SeqCst) == 5
        })
        .await
    );
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        5,
        "shutdown cut handlers short"
    );
    assert_eq!(
        stream_report(&bus.redis, &bus.stream, "drain")
            .await
            .unwrap()
            .pending,
        0,
        "finished work was not acknowledged"
    );
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_without_reaching_the_handler() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let other = event_bus::Envelope::new("other.thing", "tests", &serde_json::json!({})).unwrap();
    publisher
        .publish_batch(&bus.stream, &[other, envelope(1)])
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let mut config = config("picky", &bus.stream);
    config.event_types = Some(vec!["test.happened".to_owned()]);
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(bus.client(), config, move |event: event_bus::Envelope| {
        record.lock().unwrap().push(event.event_type);
        async { Ok(()) }
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let drained = eventually(Duration::from_secs(5), || async {
        drained(&bus, "picky").await
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(drained);
    assert_eq!(*seen.lock().unwrap(), ["test.happened"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_key_are_handled_in_stream_order_when_asked() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let events: Vec<_> = (0..200)
        .map(|n| {
            event_bus::Envelope::new(
                "test.happened",
                "tests",
                &serde_json::json!({"key": format!("k{}", n % 5), "seq": n}),
            )
            .unwrap()
        })
        .collect();
    publisher.publish_batch(&bus.stream, &events).await.unwrap();

    let handled = Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let record = handled.clone();
    let mut config = config("ordered", &bus.stream);
    config.order_key = Some(|event| event.data["key"].as_str().map(str::to_owned));
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(bus.client(), config, move |event: event_bus::Envelope| {
        let record = record.clone();
        async move {
            // Uneven work, so unordered handling would show.
            let seq = event.data["seq"].as_u64().unwrap();
            tokio::time::sleep(Duration::from_micros((seq * 7919) % 3000)).await;
            record
                .lock()
                .unwrap()
                .push((event.data["key"].as_str().unwrap().to_owned(), seq));
            Ok(())
        }
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));
    assert!(
        eventually(Duration::from_secs(10), || async {
            handled.lock().unwrap().len() == 200
        })
        .await
    );
    cancel.cancel();
    task.await.unwrap();
    let handled = handled.lock().unwrap();
    for key in ["k0", "k1", "k2", "k3", "k4"] {
        let seqs: Vec<u64> = handled
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs.len(), 40);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {seqs:?}"
        );
    }
    let interleaved = handled.windows(2).any(|w| w[0].0 != w[1].0);
    assert!(interleaved, "keys were not handled concurrently");
}

#[tokio::test]
async fn consumers_idle_for_long_with_nothing_pending_are_removed() {
    let bus = bus().await;
    let mut config = config("tidy", &bus.stream);
    config.forget_idle_consumers_after = Duration::from_millis(200);
    let consumer = Consumer::new(bus.client(), config, |_| async { Ok(()) });
    consumer.ensure_groups().await.unwrap();
    // A consumer of a process that is gone: it read one entry, acknowledged it, and
    // never came back.
    Publisher::new(bus.redis.clone(), 100)
        .publish(&bus.stream, &envelope(1))
        .await
        .unwrap();
    let mut redis = bus.redis.clone();
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("tidy")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&bus.stream)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();
    let id = read.keys[0].ids[0].id.clone();
    let _: i64 = redis::cmd("XACK")
        .arg(&bus.stream)
        .arg("tidy")
        .arg(id)
        .query_async(&mut redis)
        .await
        .unwrap();
    let names = |redis: service_kit::redis::Connection, stream: String| async move {
        let mut redis = redis;
        let consumers: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg("tidy")
            .query_async(&mut redis)
            .await
            .unwrap();
        consumers
            .iter()
            .map(|c| match c.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    let before = names(bus.redis.clone(), bus.stream.clone()).await;
    assert!(before.contains(&"ghost".to_owned()), "{before:?}");

    let cancel = CancellationToken::new();
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let removed = eventually(Duration::from_secs(5), || async {
        !names(bus.redis.clone(), bus.stream.clone())
            .await
            .contains(&"ghost".to_owned())
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(removed, "the idle consumer is still in the group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_does_not_delay_the_events_of_another_key() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let keyed = |key: &str| {
        event_bus::Envelope::new("test.happened", "tests", &serde_json::json!({ "key": key }))
            .unwrap()
    };
    // (key, finished) in the order handlers finished.
    let finished = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let slow_started = Arc::new(AtomicUsize::new(0));
    let (record, started) = (finished.clone(), slow_started.clone());
    let mut config = config("flow", &bus.stream);
    config.order_key = Some(|event| event.data["key"].as_str().map(str::to_owned));
    config.handler_timeout = Duration::from_secs(10);
    config.min_idle = Duration::from_secs(20);
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(bus.client(), config, move |event: event_bus::Envelope| {
        let (record, started) = (record.clone(), started.clone());
        async move {
            let key = event.data["key"].as_str().unwrap().to_owned();
            if key == "A" {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            record.lock().unwrap().push(key);
            Ok(())
        }
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));

    publisher.publish(&bus.stream, &keyed("A")).await.unwrap();
    let a_running = eventually(Duration::from_secs(5), || async {
        slow_started.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(a_running, "the slow handler never started");
    // B arrives while A's handler sleeps: it is read and handled meanwhile.
    publisher.publish(&bus.stream, &keyed("B")).await.unwrap();
    let both = eventually(Duration::from_secs(10), || async {
        finished.lock().unwrap().len() == 2
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(both, "handled: {:?}", finished.lock().unwrap());
    assert_eq!(
        *finished.lock().unwrap(),
        ["B", "A"],
        "B waited for A's handler"
    );
}

/// An effect that inserts a row per event, all of a batch in one statement, and always
/// fails for every tenth event (and so for any batch that holds one).
struct Stubborn;

fn fails(event: &event_bus::Envelope) -> bool {
    event.data["n"].as_u64().unwrap() % 10 == 3
}

impl event_bus::Effect for Stubborn {
    fn apply<'a>(
        &'a self,
        tx: &'a mut event_bus::Tx,
        events: &'a [event_bus::Envelope],
    ) -> futures::future::BoxFuture<'a, Result<(), event_bus::HandlerError>> {
        Box::pin(async move {
            let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
            sqlx::query("INSERT INTO effects (grp, event_id) SELECT 'batched', unnest($1::uuid[])")
                .bind(&ids)
                .execute(&mut ***tx)
                .await
                .map_err(event_bus::HandlerError::retry)?;
            if events.iter().any(fails) {
                return Err(event_bus::HandlerError::retry(anyhow::anyhow!("never")));
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_effects_apply_once_and_a_failing_event_never_fails_its_neighbours() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let events: Vec<_> = (0..300).map(envelope).collect();
    publisher.publish_batch(&bus.stream, &events).await.unwrap();
    // The same event twice: it takes effect once.
    publisher.publish(&bus.stream, &events[7]).await.unwrap();
    let cancel = CancellationToken::new();
    let consumer = Consumer::with_effects(
        bus.client(),
        config("batched", &bus.stream),
        bus.pool.clone(),
        event_bus::Wake::new(),
        Stubborn,
    );
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let dead = event_bus::dead_letter_stream(&bus.stream);
    let settled = eventually(Duration::from_secs(30), || async {
        let mut redis = bus.redis.clone();
        let dead_letters: usize = redis::cmd("XLEN")
            .arg(&dead)
            .query_async(&mut redis)
            .await
            .unwrap();
        dead_letters == 30 && drained(&bus, "batched").await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    task.await.unwrap();
    assert!(settled, "the failing events were not all dead-lettered");
    // Every other event took effect once, though many shared a batch with a failing one.
    assert_eq!(effects(&bus.pool, "batched").await, (270, 270));
    let applied: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM effects WHERE grp = 'batched'")
            .fetch_all(&bus.pool)
            .await
            .unwrap();
    assert!(
        events
            .iter()
            .filter(|e| fails(e))
            .all(|e| !applied.contains(&e.id)),
        "a failing event's effect committed"
    );
}
