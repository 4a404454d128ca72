//! Consumer groups with the inbox: every event applied exactly once per group.
#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{bus, config, effect, effects, envelope, eventually};
use event_bus::consumer::group_info;
use event_bus::{Consumer, Publisher};
use tokio_util::sync::CancellationToken;

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
            bus.redis.clone(),
            config("alpha", &bus.stream),
            effect(bus.pool.clone(), "alpha", applied.clone()),
        );
        tasks.push(tokio::spawn(consumer.run(cancel.clone())));
    }
    let beta_applied = Arc::new(AtomicUsize::new(0));
    let beta = Consumer::new(
        bus.redis.clone(),
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
    assert_eq!(shares.iter().sum::<usize>(), 10_000);
    assert_eq!(
        group_info(&bus.redis, &bus.stream, "alpha")
            .await
            .unwrap()
            .unwrap()
            .0,
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
        bus.redis.clone(),
        config("once", &bus.stream),
        effect(bus.pool.clone(), "once", applied.clone()),
    );
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let drained = eventually(Duration::from_secs(10), || async {
        group_info(&bus.redis, &bus.stream, "once")
            .await
            .unwrap()
            .is_some_and(|(pending, lag)| pending == 0 && lag == Some(0))
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
    let doomed = Consumer::new(
        bus.redis.clone(),
        config("reclaim", &bus.stream),
        |_| async { std::future::pending::<Result<(), event_bus::HandlerError>>().await },
    );
    doomed.ensure_groups().await.unwrap();
    let doomed_cancel = CancellationToken::new();
    let doomed_task = tokio::spawn(doomed.run(doomed_cancel.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            group_info(&bus.redis, &bus.stream, "reclaim")
                .await
                .unwrap()
                .is_some_and(|(pending, _)| pending == 20)
        })
        .await
    );
    doomed_task.abort();

    let applied = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let survivor = Consumer::new(
        bus.redis.clone(),
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
        group_info(&bus.redis, &bus.stream, "reclaim")
            .await
            .unwrap()
            .unwrap()
            .0,
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
    let consumer = Consumer::new(bus.redis.clone(), config("drain", &bus.stream), move |_| {
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
        group_info(&bus.redis, &bus.stream, "drain")
            .await
            .unwrap()
            .unwrap()
            .0,
        0,
        "finished work was not acknowledged"
    );
}
