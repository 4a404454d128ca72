//! Listing and replaying dead letters.
//!
//! A dead letter keeps the envelope, the error, the group that gave up and the original
//! stream and entry id. Replaying appends the envelope to its original stream again
//! (every group sees it; groups that had applied it skip it by their inbox) and removes
//! the dead letter.

use std::collections::HashMap;

use redis::Value;
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;

use crate::envelope::ENVELOPE_FIELD;

/// One dead-lettered entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    pub envelope: String,
    pub error: String,
    pub group: String,
    pub stream: String,
    pub original_id: String,
}

fn field(map: &HashMap<String, Value>, name: &str) -> String {
    crate::reply::text(map.get(name))
}

/// The dead letters of `stream`, oldest first.
pub async fn list(redis: &ConnectionManager, stream: &str) -> redis::RedisResult<Vec<DeadLetter>> {
    let mut redis = redis.clone();
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(dead_letter_stream(stream))
        .arg("-")
        .arg("+")
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
            id: entry.id,
        })
        .collect())
}

/// Appends every dead letter of `stream` to `stream` again and removes it from the
/// dead-letter stream. Returns how many were replayed.
pub async fn replay(redis: &ConnectionManager, stream: &str) -> redis::RedisResult<usize> {
    let letters = list(redis, stream).await?;
    let mut connection = redis.clone();
    for letter in &letters {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(ENVELOPE_FIELD)
            .arg(&letter.envelope)
            .ignore()
            .cmd("XDEL")
            .arg(dead_letter_stream(stream))
            .arg(&letter.id)
            .ignore();
        pipe.query_async::<()>(&mut connection).await?;
    }
    Ok(letters.len())
}

/// The dead-letter stream for `stream`.
pub fn dead_letter_stream(stream: &str) -> String {
    format!("{stream}:dead")
}
