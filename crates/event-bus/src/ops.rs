//! What an operator asks of the bus in one service: how its consumer group keeps up
//! with each stream, what its outbox still holds, which events it published about one
//! key (an order's journey), and how many it published per minute.
//!
//! Read-only and cheap: a handful of `XINFO`/`XPENDING` per stream in three round
//! trips (the consumer's upkeep exports its gauges from the same report), and queries
//! the outbox's indexes answer (`published_at`, and the unpublished rows).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contracts::ops::{Backlog, ConsumerReport, DeadLetter, MinuteCount, StreamReport};
use redis::Value;
use serde::{Deserialize, Serialize};
use service_kit::redis::Connection;
use sqlx::PgPool;
use sqlx::types::Json;

use crate::envelope::Envelope;
use crate::reply;

fn count(value: Option<&Value>) -> u64 {
    reply::integer(value)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// How `group` keeps up with `stream`; a stream or group that does not exist yet
/// reports zeros.
pub async fn stream_report(
    redis: &Connection,
    stream: &str,
    group: &str,
) -> redis::RedisResult<StreamReport> {
    let mut redis = redis.clone();
    let mut report = StreamReport {
        stream: stream.to_owned(),
        group: group.to_owned(),
        length: 0,
        entries_added: 0,
        lag: None,
        pending: 0,
        oldest_pending_age_ms: None,
        consumers: Vec::new(),
    };
    let exists: bool = redis::cmd("EXISTS")
        .arg(stream)
        .query_async(&mut redis)
        .await?;
    if !exists {
        return Ok(report);
    }
    // Two round trips: the stream and its groups, then (the group known to exist, or
    // Redis refuses both) its pending entries and consumers.
    let (info, groups): (HashMap<String, Value>, Vec<HashMap<String, Value>>) = redis::pipe()
        .cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut redis)
        .await?;
    report.length = count(info.get("length"));
    report.entries_added = count(info.get("entries-added"));
    let Some(info) = groups
        .into_iter()
        .find(|info| reply::text(info.get("name")) == group)
    else {
        return Ok(report);
    };
    report.pending = count(info.get("pending"));
    report.lag = reply::integer(info.get("lag")).and_then(|n| u64::try_from(n).ok());
    // XPENDING's summary form: [count, smallest id, greatest id, per consumer].
    type Summary = (u64, Option<String>, Option<String>, Value);
    let (summary, consumers): (Summary, Vec<HashMap<String, Value>>) = redis::pipe()
        .cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query_async(&mut redis)
        .await?;
    report.oldest_pending_age_ms = summary.1.as_deref().and_then(age_ms);
    report.consumers = consumers
        .iter()
        .map(|info| ConsumerReport {
            name: reply::text(info.get("name")),
            pending: count(info.get("pending")),
            idle_ms: count(info.get("idle")),
        })
        .collect();
    Ok(report)
}

/// Milliseconds since the time in a stream entry id (`<ms>-<seq>`).
fn age_ms(id: &str) -> Option<u64> {
    let millis: i64 = id.split('-').next()?.parse().ok()?;
    let now = Utc::now().timestamp_millis();
    u64::try_from(now.saturating_sub(millis)).ok()
}

/// The outbox's unpublished rows: how many, and how long the oldest has waited.
pub async fn outbox_backlog(pool: &PgPool) -> sqlx::Result<Backlog> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "events!",
                  (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS oldest_age_ms
             FROM outbox WHERE published_at IS NULL"#,
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        events: row.events,
        oldest_age_ms: row.oldest_age_ms.map(|ms| ms.max(0.0) as i64),
    })
}

/// An event this service published (or is about to), as its outbox row has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: uuid::Uuid,
    pub event_type: String,
    pub source: String,
    pub stream: String,
    pub occurred_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub traceparent: Option<String>,
}

/// The events keyed `key` (an order's id) that this service committed since `since`,
/// oldest first: published ones the outbox still keeps (a day by default) and those
/// waiting.
pub async fn published_with_key(
    pool: &PgPool,
    key: &str,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<Published>> {
    let rows = sqlx::query!(
        r#"SELECT id, stream, envelope AS "envelope: Json<Envelope>", published_at FROM outbox
              WHERE (published_at >= $2 OR published_at IS NULL)
                AND COALESCE(envelope->>'partitionkey', envelope->>'key') = $1
              ORDER BY seq"#,
        key,
        since,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let Json(envelope) = row.envelope;
            Published {
                id: row.id,
                event_type: envelope.event_type,
                source: envelope.source,
                stream: row.stream,
                occurred_at: envelope.occurred_at,
                published_at: row.published_at,
                traceparent: envelope.traceparent,
            }
        })
        .collect())
}

/// Events published per stream, type and minute since `since`.
pub async fn published_per_minute(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<MinuteCount>> {
    // The outbox's envelopes all carry a type, and `published_at >= $1` holds only where
    // it is set: the overrides say so where the planner cannot.
    sqlx::query_as!(
        MinuteCount,
        r#"SELECT stream, envelope->>'type' AS "event_type!",
                  date_trunc('minute', published_at) AS "minute!", count(*) AS "events!"
             FROM outbox WHERE published_at >= $1
            GROUP BY 1, 2, 3 ORDER BY 3"#,
        since,
    )
    .fetch_all(pool)
    .await
}

/// Where one service's bus lives, for its ops report: its database, Redis, and the
/// group and stream partitions it consumes.
#[derive(Clone)]
pub struct Sources {
    pub pool: PgPool,
    pub redis: Connection,
    /// The service's consumer group, and the partitions it reads; none for a service
    /// that only publishes.
    pub subscription: Option<(String, Vec<String>)>,
}

impl Sources {
    /// How the group keeps up with each partition it reads.
    pub async fn streams(&self) -> redis::RedisResult<Vec<StreamReport>> {
        let Some((group, streams)) = &self.subscription else {
            return Ok(Vec::new());
        };
        futures::future::try_join_all(
            streams
                .iter()
                .map(|stream| stream_report(&self.redis, stream, group)),
        )
        .await
    }

    /// The dead letters this service's group gave up on, oldest first.
    pub async fn dead_letters(&self) -> redis::RedisResult<Vec<DeadLetter>> {
        let Some((group, streams)) = &self.subscription else {
            return Ok(Vec::new());
        };
        let lists = futures::future::try_join_all(
            streams
                .iter()
                .map(|stream| crate::dead_letters::list(&self.redis, stream)),
        )
        .await?;
        Ok(lists
            .into_iter()
            .flatten()
            .filter(|letter| &letter.group == group)
            .collect())
    }

    /// Applies `action` to the dead letter `id` of `stream`, if it is one this
    /// service's group gave up on: `false` when there is no such dead letter (already
    /// replayed or discarded, another group's, or a stream this service does not read:
    /// an operator's action through a service touches only that service's streams).
    pub async fn act_on_dead_letter(
        &self,
        stream: &str,
        id: &str,
        action: contracts::ops::Action,
    ) -> redis::RedisResult<bool> {
        let Some((group, streams)) = &self.subscription else {
            return Ok(false);
        };
        if !streams.iter().any(|s| s == stream) {
            return Ok(false);
        }
        match crate::dead_letters::get(&self.redis, stream, id).await? {
            Some(letter) if &letter.group == group => {
                crate::dead_letters::apply(&self.redis, stream, &letter, action).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
