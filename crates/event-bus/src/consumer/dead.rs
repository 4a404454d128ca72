//! Giving up on an entry: its envelope and why, onto the dead-letter stream, and the
//! entry acknowledged, in one transaction.

use super::entry::Entry;
use super::shared::Shared;
use crate::dead_letters::dead_letter_stream;
use crate::envelope::ENVELOPE_FIELD;

/// Copies `entry` to its stream's dead-letter stream with why, then acknowledges it.
pub(super) async fn dead_letter(
    shared: &Shared,
    entry: &Entry,
    error: &str,
    deliveries: u64,
) -> redis::RedisResult<()> {
    let config = &shared.config;
    let raw = match &entry.envelope {
        Ok(envelope) => serde_json::to_string(envelope).unwrap_or_default(),
        Err(reason) => reason.to_string(),
    };
    let mut redis = shared.commands().await?;
    redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(dead_letter_stream(&entry.stream))
        .arg("*")
        .arg(ENVELOPE_FIELD)
        .arg(raw)
        .arg("error")
        .arg(error)
        .arg("group")
        .arg(&config.group)
        .arg("stream")
        .arg(&entry.stream)
        .arg("original_id")
        .arg(&entry.id)
        .arg("deliveries")
        .arg(deliveries)
        .ignore()
        .cmd("XACK")
        .arg(&entry.stream)
        .arg(&config.group)
        .arg(&entry.id)
        .ignore()
        .query_async::<()>(&mut redis)
        .await?;
    shared.forget_errors([entry.id.as_str()]);
    metrics::counter!("events_dead_lettered_total", "group" => config.group.clone()).increment(1);
    tracing::error!(group = %config.group, stream = %entry.stream, entry = %entry.id, error, "event dead-lettered");
    Ok(())
}
