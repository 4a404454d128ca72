//! What a consumer does on a timer, off the path of new entries: reclaiming, dead
//! letters, metrics and tidying the group.
//!
//! Every `reclaim_interval`, for each stream: exports the group's pending count, its lag
//! and the age of its oldest pending entry,
//! removes consumers idle for long with nothing pending (their processes are gone),
//! and claims entries idle longer than `min_idle` (`XAUTOCLAIM`: this consumer's
//! failures and what dead consumers left). A claimed entry delivered more than
//! `max_deliveries` times is dead-lettered; the rest go to the lanes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId};
use tokio_util::sync::CancellationToken;

use super::dead::dead_letter;
use super::entry::to_entry;
use super::lanes::{Lanes, Work};
use super::shared::Shared;

/// Runs every `reclaim_interval` until `cancel`.
pub(super) async fn run(shared: Arc<Shared>, lanes: Lanes, cancel: CancellationToken) {
    let every = shared.config.reclaim_interval;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for stream in &shared.config.streams {
            let done = async {
                observe_and_tidy(&shared, stream).await?;
                reclaim(&shared, &lanes, stream).await
            };
            if let Err(error) = done.await {
                tracing::warn!(group = %shared.config.group, %stream, %error, "reclaiming failed; trying again next round");
                shared.recover(&error).await;
            }
        }
    }
}

/// Claims entries of `stream` idle longer than `min_idle`; dead-letters those delivered
/// too often and hands the rest to the lanes.
async fn reclaim(shared: &Shared, lanes: &Lanes, stream: &str) -> redis::RedisResult<()> {
    let config = &shared.config;
    let mut redis = shared.commands().await?;
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(&config.group)
        .arg(&config.consumer)
        .arg(config.min_idle.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(config.batch_size)
        .query_async(&mut redis)
        .await?;
    if reply.claimed.is_empty() {
        return Ok(());
    }
    let deliveries = delivery_counts(shared, stream, &reply.claimed).await?;
    for entry in reply.claimed {
        let entry = to_entry(stream, entry);
        let count = deliveries.get(&entry.id).copied().unwrap_or(1);
        if count > config.max_deliveries {
            let error = shared
                .errors
                .lock()
                .ok()
                .and_then(|errors| errors.get(&entry.id).cloned())
                .unwrap_or_else(|| format!("not acknowledged after {} deliveries", count - 1));
            dead_letter(shared, &entry, &error, count - 1).await?;
        } else {
            metrics::counter!("events_retried_total", "group" => config.group.clone()).increment(1);
            lanes.dispatch(Work {
                entry,
                _in_flight: None,
            });
        }
    }
    Ok(())
}

/// Exports the group's pending count, lag and oldest pending entry's age on `stream`
/// (from the ops report, the figures an operator reads), and removes consumers of the
/// group that have been idle for long with nothing pending.
async fn observe_and_tidy(shared: &Shared, stream: &str) -> redis::RedisResult<()> {
    let config = &shared.config;
    let mut redis = shared.commands().await?;
    let report = crate::ops::stream_report(&redis, stream, &config.group).await?;
    let labels = [
        ("group", config.group.clone()),
        ("stream", stream.to_owned()),
    ];
    metrics::gauge!("events_pending", &labels).set(report.pending as f64);
    if let Some(lag) = report.lag {
        metrics::gauge!("events_lag", &labels).set(lag as f64);
    }
    // An entry that stays pending while others pass is stuck: redelivered, failing, or
    // held by a consumer that died. Zero when nothing is pending.
    let oldest = Duration::from_millis(report.oldest_pending_age_ms.unwrap_or(0));
    metrics::gauge!("events_oldest_pending_age_seconds", &labels).set(oldest.as_secs_f64());
    let threshold = config.forget_idle_consumers_after.as_millis() as u64;
    for consumer in report.consumers {
        if consumer.name != config.consumer && consumer.pending == 0 && consumer.idle_ms > threshold
        {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(stream)
                .arg(&config.group)
                .arg(&consumer.name)
                .query_async::<i64>(&mut redis)
                .await?;
            tracing::info!(group = %config.group, consumer = %consumer.name, "removed an idle consumer");
        }
    }
    Ok(())
}

/// How many times each of `entries` has been delivered, from `XPENDING`.
async fn delivery_counts(
    shared: &Shared,
    stream: &str,
    entries: &[StreamId],
) -> redis::RedisResult<HashMap<String, u64>> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(HashMap::new());
    };
    let mut redis = shared.commands().await?;
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(&shared.config.group)
        .arg(&first.id)
        .arg(&last.id)
        .arg(entries.len())
        .arg(&shared.config.consumer)
        .query_async(&mut redis)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, _, _, deliveries)| (id, deliveries))
        .collect())
}
