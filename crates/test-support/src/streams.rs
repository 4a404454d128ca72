//! Reading a test's event streams back.

use redis::streams::{StreamId, StreamRangeReply};

/// Every entry of `stream`, oldest first.
pub async fn entries(stream: &str) -> Vec<StreamId> {
    let mut redis = crate::redis_server::redis().await;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .expect("XRANGE of a test stream");
    reply.ids
}

/// The `envelope` field (the event as JSON) of every entry of `stream`, oldest first.
pub async fn envelopes(stream: &str) -> Vec<serde_json::Value> {
    entries(stream)
        .await
        .iter()
        .map(|entry| {
            let json: String = entry.get("envelope").expect("an entry carries an envelope");
            serde_json::from_str(&json).expect("an envelope is JSON")
        })
        .collect()
}
