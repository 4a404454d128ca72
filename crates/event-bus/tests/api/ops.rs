//! What the ops console reads of the bus: a group's lag and pending entries, its dead
//! letters (and the only ones an operator may act on through it), the outbox.

use crate::common;

use crate::common::{bus, envelope};
use chrono::Utc;
use event_bus::dead_letters::Action;
use event_bus::ops::{self, Sources};
use redis::AsyncCommands;

#[tokio::test]
async fn a_groups_report_shows_its_length_lag_pending_entries_and_consumers() {
    let bus = bus().await;
    let mut redis = bus.redis.clone();
    let nothing = ops::stream_report(&bus.redis, &bus.stream, "g")
        .await
        .unwrap();
    assert_eq!((nothing.length, nothing.pending, nothing.lag), (0, 0, None));

    for n in 0..5 {
        let _: String = redis.xadd(&bus.stream, "*", &[("n", n)]).await.unwrap();
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&bus.stream)
        .arg("g")
        .arg("0")
        .query_async(&mut redis)
        .await
        .unwrap();
    // A consumer takes two entries and acknowledges neither.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&bus.stream)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();

    let report = ops::stream_report(&bus.redis, &bus.stream, "g")
        .await
        .unwrap();
    assert_eq!(report.length, 5);
    assert_eq!(report.entries_added, 5);
    assert_eq!(
        report.lag,
        Some(3),
        "three entries not given to the group yet"
    );
    assert_eq!(report.pending, 2);
    assert!(report.oldest_pending_age_ms.is_some());
    assert_eq!(report.consumers.len(), 1);
    assert_eq!(report.consumers[0].name, "c1");
    assert_eq!(report.consumers[0].pending, 2);

    let other = ops::stream_report(&bus.redis, &bus.stream, "no-such-group")
        .await
        .unwrap();
    assert_eq!((other.length, other.pending, other.lag), (5, 0, None));
}

/// Dead-letters `envelope` of `stream` as `group` would have.
async fn dead_letter(bus: &common::Bus, stream: &str, group: &str) -> String {
    let mut redis = bus.redis.clone();
    let envelope = serde_json::to_string(&envelope(1)).unwrap();
    redis
        .xadd(
            event_bus::dead_letter_stream(stream),
            "*",
            &[
                ("envelope", envelope.as_str()),
                ("error", "it failed"),
                ("group", group),
                ("stream", stream),
                ("original_id", "1-0"),
                ("deliveries", "6"),
            ],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operator_acts_only_on_the_dead_letters_of_the_services_own_group_and_streams() {
    let bus = bus().await;
    let mut redis = bus.redis.clone();
    let sources = Sources {
        pool: bus.pool.clone(),
        redis: bus.redis.clone(),
        subscription: Some(("mine".to_owned(), vec![bus.stream.clone()])),
    };
    let mine = dead_letter(&bus, &bus.stream, "mine").await;
    let theirs = dead_letter(&bus, &bus.stream, "theirs").await;

    let listed = sources.dead_letters().await.unwrap();
    assert_eq!(listed.len(), 1, "only this group's");
    assert_eq!(
        (listed[0].id.as_str(), listed[0].deliveries),
        (mine.as_str(), 6)
    );

    // Another group's letter, or a stream this service does not read: nothing happens.
    assert!(
        !sources
            .act_on_dead_letter(&bus.stream, &theirs, Action::Discard)
            .await
            .unwrap()
    );
    assert!(
        !sources
            .act_on_dead_letter("some:other:stream", &mine, Action::Replay)
            .await
            .unwrap()
    );
    let all = event_bus::dead_letters::list(&bus.redis, &bus.stream)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "both still there");

    // Replay: back on its stream, out of the dead letters; a second time finds nothing.
    assert!(
        sources
            .act_on_dead_letter(&bus.stream, &mine, Action::Replay)
            .await
            .unwrap()
    );
    let length: u64 = redis.xlen(&bus.stream).await.unwrap();
    assert_eq!(length, 1, "replayed onto the stream");
    assert!(sources.dead_letters().await.unwrap().is_empty());
    assert!(
        !sources
            .act_on_dead_letter(&bus.stream, &mine, Action::Replay)
            .await
            .unwrap()
    );

    // Discard: gone, and not replayed.
    let another = dead_letter(&bus, &bus.stream, "mine").await;
    assert!(
        sources
            .act_on_dead_letter(&bus.stream, &another, Action::Discard)
            .await
            .unwrap()
    );
    assert!(sources.dead_letters().await.unwrap().is_empty());
    let length: u64 = redis.xlen(&bus.stream).await.unwrap();
    assert_eq!(length, 1, "a discarded letter is not replayed");
}

#[tokio::test]
async fn the_outbox_reports_its_backlog_the_events_of_a_key_and_its_events_per_minute() {
    let bus = bus().await;
    let since = Utc::now() - chrono::Duration::minutes(1);
    let stream = bus.single();
    let first = envelope(1).keyed("order-1");
    let second = envelope(2).keyed("order-1");
    let unrelated = envelope(3).keyed("order-2");
    let mut tx = event_bus::Tx::begin(&bus.pool).await.unwrap();
    for event in [&first, &unrelated, &second] {
        tx.enqueue(&stream, event).unwrap();
    }
    tx.commit().await.unwrap();

    let backlog = ops::outbox_backlog(&bus.pool).await.unwrap();
    assert_eq!(backlog.events, 3);
    assert!(backlog.oldest_age_ms.is_some());
    let keyed = ops::published_with_key(&bus.pool, "order-1", since)
        .await
        .unwrap();
    let ids: Vec<_> = keyed.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [first.id, second.id],
        "waiting ones too, in commit order"
    );

    sqlx::query!("UPDATE outbox SET published_at = now()")
        .execute(&bus.pool)
        .await
        .unwrap();
    let backlog = ops::outbox_backlog(&bus.pool).await.unwrap();
    assert_eq!((backlog.events, backlog.oldest_age_ms), (0, None));
    let keyed = ops::published_with_key(&bus.pool, "order-1", since)
        .await
        .unwrap();
    assert_eq!(keyed.len(), 2);
    assert!(keyed.iter().all(|e| e.published_at.is_some()));
    let later = Utc::now() + chrono::Duration::minutes(1);
    assert!(
        ops::published_with_key(&bus.pool, "order-1", later)
            .await
            .unwrap()
            .is_empty()
    );

    let counts = ops::published_per_minute(&bus.pool, since).await.unwrap();
    assert_eq!(counts.iter().map(|c| c.events).sum::<i64>(), 3);
    assert!(
        counts
            .iter()
            .all(|c| c.stream == bus.stream && c.event_type == "test.happened")
    );
}

/// The value of the series `name{labels}` in Prometheus text, if it is there.
fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn an_entry_that_keeps_failing_shows_as_the_oldest_pending_age_until_it_is_handled() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let metrics = service_kit::metrics::handle();
    let bus = bus().await;
    let mut config = common::config("stuck", &bus.stream);
    config.max_deliveries = 1_000;
    let labels = format!(r#"group="stuck",stream="{}""#, bus.stream);
    event_bus::Publisher::new(bus.redis.clone(), 10_000)
        .publish_batch(&bus.stream, &[envelope(1)])
        .await
        .unwrap();
    let healed = Arc::new(AtomicBool::new(false));
    let cancel = tokio_util::sync::CancellationToken::new();
    let consumer = event_bus::Consumer::new(bus.client(), config, {
        let healed = healed.clone();
        move |_event: event_bus::Envelope| {
            let healed = healed.load(Ordering::SeqCst);
            async move {
                if healed {
                    Ok(())
                } else {
                    Err(event_bus::HandlerError::Retry(anyhow::anyhow!("failing")))
                }
            }
        }
    });
    let task = tokio::spawn(consumer.run(cancel.clone()));

    let age = || {
        series(
            &metrics.render(),
            "events_oldest_pending_age_seconds",
            &labels,
        )
    };
    let stuck = common::eventually(Duration::from_secs(10), || async {
        age().is_some_and(|seconds| seconds >= 1.0)
    })
    .await;
    assert!(
        stuck,
        "no age of a second for the failing entry: {:?}",
        age()
    );
    assert_eq!(
        series(&metrics.render(), "events_pending", &labels),
        Some(1.0)
    );

    healed.store(true, Ordering::SeqCst);
    let handled =
        common::eventually(Duration::from_secs(10), || async { age() == Some(0.0) }).await;
    assert!(
        handled,
        "the age stayed {:?} once the entry was handled",
        age()
    );
    cancel.cancel();
    task.await.unwrap();
}
