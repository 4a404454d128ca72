//! An entry that keeps failing goes to the dead-letter stream; the rest go on; replay
//! brings it back.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{bus, config, effects, envelope, eventually};
use event_bus::{Consumer, HandlerError, Publisher, dead_letters};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn an_always_failing_entry_is_dead_lettered_after_max_deliveries_and_replay_republishes_it() {
    let bus = bus().await;
    let publisher = Publisher::new(bus.redis.clone(), 10_000);
    let bad = envelope(13);
    let bad_id = bad.id;
    let mut batch: Vec<_> = (0..10).map(envelope).collect();
    batch.insert(5, bad.clone());
    publisher.publish_batch(&bus.stream, &batch).await.unwrap();

    let healed = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicUsize::new(0));
    let inner = common::effect(bus.pool.clone(), "dlq", applied.clone());
    let (h, a) = (healed.clone(), attempts.clone());
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(
        bus.client(),
        config("dlq", &bus.stream),
        move |event: event_bus::Envelope| {
            let failing = event.id == bad_id && !h.load(Ordering::SeqCst);
            if event.id == bad_id {
                a.fetch_add(1, Ordering::SeqCst);
            }
            let work = inner(event);
            async move {
                if failing {
                    Err(HandlerError::Retry(anyhow::anyhow!("the bad event fails")))
                } else {
                    work.await
                }
            }
        },
    );
    let task = tokio::spawn(consumer.run(cancel.clone()));

    let dead = eventually(Duration::from_secs(15), || async {
        !dead_letters::list(&bus.redis, &bus.stream)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    assert!(dead, "nothing was dead-lettered");
    let letters = dead_letters::list(&bus.redis, &bus.stream).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].group, "dlq");
    assert!(
        letters[0].error.contains("the bad event fails"),
        "{:?}",
        letters[0]
    );
    assert!(letters[0].envelope.contains(&bad_id.to_string()));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "delivered max_deliveries times"
    );
    assert_eq!(
        effects(&bus.pool, "dlq").await,
        (10, 10),
        "the other events were applied"
    );

    healed.store(true, Ordering::SeqCst);
    assert_eq!(
        dead_letters::replay(&bus.redis, &bus.stream).await.unwrap(),
        1
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            effects(&bus.pool, "dlq").await.1 == 11
        })
        .await
    );
    assert!(
        dead_letters::list(&bus.redis, &bus.stream)
            .await
            .unwrap()
            .is_empty()
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_entry_whose_envelope_does_not_parse_is_dead_lettered_at_once() {
    let bus = bus().await;
    let mut redis = bus.redis.clone();
    let _: String = redis::cmd("XADD")
        .arg(&bus.stream)
        .arg("*")
        .arg("envelope")
        .arg("{not json")
        .query_async(&mut redis)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let consumer = Consumer::new(bus.client(), config("poison", &bus.stream), |_| async {
        Ok(())
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));
    let dead = eventually(Duration::from_secs(5), || async {
        dead_letters::list(&bus.redis, &bus.stream)
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(dead);
    let letter = &dead_letters::list(&bus.redis, &bus.stream).await.unwrap()[0];
    assert!(letter.error.contains("unreadable envelope"), "{letter:?}");
}

#[tokio::test]
async fn the_dead_letters_command_lists_and_replays() {
    let bus = bus().await;
    let mut redis = bus.redis.clone();
    let event = envelope(7);
    let _: String = redis::cmd("XADD")
        .arg(event_bus::dead_letter_stream(&bus.stream))
        .arg("*")
        .arg("envelope")
        .arg(serde_json::to_string(&event).unwrap())
        .arg("error")
        .arg("it broke")
        .arg("group")
        .arg("cli")
        .arg("stream")
        .arg(&bus.stream)
        .arg("original_id")
        .arg("1-0")
        .query_async(&mut redis)
        .await
        .unwrap();
    let run = |command: &'static str| {
        let stream = bus.stream.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_dead-letters"))
                .args([command, "--stream", &stream])
                .env_clear()
                .env("REDIS_URL", test_support::redis_url())
                .current_dir(std::env::temp_dir())
                .output()
                .await
                .unwrap()
        }
    };
    let listed = run("list").await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(line["error"], "it broke");
    assert_eq!(line["envelope"]["id"], event.id.to_string());

    let replayed = run("replay").await;
    assert!(replayed.status.success());
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("replayed 1"));
    assert!(
        dead_letters::list(&bus.redis, &bus.stream)
            .await
            .unwrap()
            .is_empty()
    );
    let len: usize = redis::cmd("XLEN")
        .arg(&bus.stream)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 1);
}
