//! A rolling upgrade of the envelope: what the version before CloudEvents left on the
//! streams and in the outbox is still consumed.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{bus, config, eventually};
use event_bus::{Consumer, Publisher};
use tokio_util::sync::CancellationToken;

/// An event in the envelope shape from before CloudEvents, as the previous version
/// wrote it (`occurred_at`, `correlation_id`, `key`, no `specversion`).
fn previous_shape(id: uuid::Uuid, n: usize) -> String {
    serde_json::json!({
        "id": id,
        "type": "test.happened",
        "version": 1,
        "source": "tests",
        "occurred_at": "2026-12-01T10:00:00Z",
        "correlation_id": null,
        "causation_id": null,
        "key": format!("thing-{n}"),
        "data": {"n": n},
    })
    .to_string()
}

#[tokio::test]
async fn entries_and_outbox_rows_left_in_the_previous_envelope_shape_are_consumed_after_an_upgrade()
{
    let bus = bus().await;
    // Left on the stream by a producer of the previous version ...
    let on_stream = uuid::Uuid::now_v7();
    let mut redis = bus.redis.clone();
    let _: String = redis::cmd("XADD")
        .arg(&bus.stream)
        .arg("*")
        .arg(event_bus::ENVELOPE_FIELD)
        .arg(previous_shape(on_stream, 1))
        .query_async(&mut redis)
        .await
        .unwrap();
    // ... and committed to its outbox, not yet published.
    let in_outbox = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO outbox (id, stream, envelope) VALUES ($1, $2, $3::jsonb)")
        .bind(in_outbox)
        .bind(&bus.stream)
        .bind(previous_shape(in_outbox, 2))
        .execute(&bus.pool)
        .await
        .unwrap();
    let keyed = event_bus::ops::published_with_key(&bus.pool, "thing-2", chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        keyed.iter().map(|event| event.id).collect::<Vec<_>>(),
        [in_outbox],
        "the timeline finds an old row by its key"
    );
    let relay = event_bus::Relay::new(
        bus.pool.clone(),
        Publisher::new(bus.redis.clone(), 10_000),
        event_bus::RelayConfig::default(),
        event_bus::Wake::new(),
    );
    relay.publish_pending().await.unwrap();

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        move |event: event_bus::Envelope| {
            seen.lock().unwrap().push(event);
            futures::future::ready(Ok::<(), event_bus::HandlerError>(()))
        }
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        Consumer::new(bus.client(), config("upgraded", &bus.stream), handler).run(cancel.clone()),
    );
    let drained = eventually(Duration::from_secs(10), || async {
        seen.lock().unwrap().len() == 2
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(drained, "both handled: {:?}", seen.lock().unwrap());
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        seen.iter().map(|event| event.id).collect::<Vec<_>>(),
        [on_stream, in_outbox]
    );
    for (n, event) in seen.iter().enumerate() {
        assert_eq!(
            event.key.as_deref(),
            Some(format!("thing-{}", n + 1).as_str())
        );
        assert_eq!(event.data["n"], n + 1);
    }
    let dead: usize = redis::cmd("XLEN")
        .arg(event_bus::dead_letter_stream(&bus.stream))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered");
}
