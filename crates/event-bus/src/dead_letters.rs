//! Listing, replaying and discarding dead letters, per stream partition.
//!
//! A dead letter keeps the envelope, the error, the group that gave up, how often it
//! was delivered, and the original stream and entry id. Replaying appends the envelope
//! to its original stream again (every group sees it; groups that had applied it skip
//! it by their inbox) and removes the dead letter, in one transaction; discarding only
//! removes it.

use std::collections::HashMap;

pub use contracts::ops::{Action, DeadLetter};
use redis::Value;
use redis::streams::StreamRangeReply;
use service_kit::redis::Connection;

use crate::envelope::ENVELOPE_FIELD;

fn field(map: &HashMap<String, Value>, name: &str) -> String {
    crate::reply::text(map.get(name))
}

/// The dead letters of `stream`, oldest first.
pub async fn list(redis: &Connection, stream: &str) -> redis::RedisResult<Vec<DeadLetter>> {
    range(redis, stream, "-", "+").await
}

/// The dead letters of `stream` with ids from `first` to `last`, oldest first.
async fn range(
    redis: &Connection,
    stream: &str,
    first: &str,
    last: &str,
) -> redis::RedisResult<Vec<DeadLetter>> {
    let mut redis = redis.clone();
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(dead_letter_stream(stream))
        .arg(first)
        .arg(last)
        .query_async(&mut redis)
        .await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|entry| DeadLetter {
            envelope: field(&entry.map, ENVELOPE_FIELD),
            error: field(&entry.map, "error"),
            group: field(&entry.map, "group"),
            stream: field(&entry.map, "stream"),
            original_id: field(&entry.map, "original_id"),
            deliveries: field(&entry.map, "deliveries").parse().unwrap_or(0),
            id: entry.id,
        })
        .collect())
}

/// Appends every dead letter of `stream` to `stream` again and removes it from the
/// dead-letter stream. Returns how many were replayed.
pub async fn replay(redis: &Connection, stream: &str) -> redis::RedisResult<usize> {
    let letters = list(redis, stream).await?;
    for letter in &letters {
        replay_one(redis, stream, letter).await?;
    }
    Ok(letters.len())
}

/// Appends `letter` to `stream` again and removes it from the dead letters, in one
/// transaction.
async fn replay_one(
    redis: &Connection,
    stream: &str,
    letter: &DeadLetter,
) -> redis::RedisResult<()> {
    let mut connection = redis.clone();
    redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(ENVELOPE_FIELD)
        .arg(&letter.envelope)
        .ignore()
        .cmd("XDEL")
        .arg(dead_letter_stream(stream))
        .arg(&letter.id)
        .ignore()
        .query_async::<()>(&mut connection)
        .await
}

/// The dead letter `id` of `stream`, if there is one.
pub async fn get(
    redis: &Connection,
    stream: &str,
    id: &str,
) -> redis::RedisResult<Option<DeadLetter>> {
    Ok(range(redis, stream, id, id).await?.into_iter().next())
}

/// Applies `action` to `letter`, a dead letter of `stream`.
pub async fn apply(
    redis: &Connection,
    stream: &str,
    letter: &DeadLetter,
    action: Action,
) -> redis::RedisResult<()> {
    match action {
        Action::Replay => replay_one(redis, stream, letter).await,
        Action::Discard => {
            let mut connection = redis.clone();
            redis::cmd("XDEL")
                .arg(dead_letter_stream(stream))
                .arg(&letter.id)
                .query_async::<()>(&mut connection)
                .await
        }
    }
}

/// The dead-letter stream for `stream` (a partition): in the same cluster slot, so an
/// entry is dead-lettered and acknowledged in one transaction. A partition's hash tag
/// already names its slot (`{events:order:1}:dead`); a stream without one becomes the
/// tag (`{events:order}:dead`).
pub fn dead_letter_stream(stream: &str) -> String {
    let tagged = stream
        .find('{')
        .is_some_and(|open| stream[open + 1..].find('}').is_some_and(|len| len > 0));
    if tagged {
        format!("{stream}:dead")
    } else {
        format!("{{{stream}}}:dead")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_stream_shares_its_streams_slot() {
        for stream in ["events:order", "{events:order:2}", "p:{x}"] {
            let dead = dead_letter_stream(stream);
            assert!(
                service_kit::redis::same_slot(stream, &dead),
                "{stream} and {dead}"
            );
        }
        assert_eq!(dead_letter_stream("events:order"), "{events:order}:dead");
        assert_eq!(
            dead_letter_stream("{events:order:2}"),
            "{events:order:2}:dead"
        );
    }
}
