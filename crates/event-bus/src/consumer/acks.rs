//! Acknowledging entries as their handlers finish.
//!
//! A lane sends an entry here the moment its effect has committed; the acker sends
//! `XACK` at once. What finishes while one `XACK` is on its way goes together in the
//! next (one command per stream, one round trip; on a cluster, one command per stream
//! to each stream's node, all at once), so under load acknowledgements cost
//! a fraction of a round trip each and no entry waits for another's handler.
//!
//! A failed `XACK` (Redis down) is logged and dropped: the entries stay pending, are
//! reclaimed later, and their handlers' inboxes make the second run a no-op.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::shared::Shared;

/// An entry to acknowledge: (stream, id).
pub(super) type Done = (String, String);

/// Most entries acknowledged in one round trip.
const MOST_AT_ONCE: usize = 1000;

pub(super) fn channel() -> (mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>) {
    mpsc::unbounded_channel()
}

/// Acknowledges what arrives until every sender is gone.
pub(super) async fn run(shared: Arc<Shared>, mut done: mpsc::UnboundedReceiver<Done>) {
    let mut batch = Vec::new();
    while done.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
        if let Err(error) = acknowledge(&shared, &batch).await {
            tracing::warn!(group = %shared.config.group, %error, entries = batch.len(), "cannot acknowledge; the entries will be redelivered");
            shared.recover(&error).await;
        }
        batch.clear();
    }
}

async fn acknowledge(shared: &Shared, entries: &[Done]) -> redis::RedisResult<()> {
    let mut by_stream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (stream, id) in entries {
        by_stream.entry(stream).or_default().push(id);
    }
    shared.forget_errors(entries.iter().map(|(_, id)| id.as_str()));
    let redis = shared.commands().await?;
    let xack = |stream: &str, ids: &[&str]| {
        let mut command = redis::cmd("XACK");
        command.arg(stream).arg(&shared.config.group).arg(ids);
        command
    };
    if redis.is_cluster() {
        // One command per stream, each to its own slot's node, all at once.
        let acks = by_stream.iter().map(|(stream, ids)| {
            let command = xack(stream, ids);
            let mut redis = redis.clone();
            async move { command.query_async::<()>(&mut redis).await }
        });
        futures::future::try_join_all(acks).await.map(drop)
    } else {
        let mut pipe = redis::pipe();
        for (stream, ids) in &by_stream {
            pipe.add_command(xack(stream, ids)).ignore();
        }
        pipe.query_async::<()>(&mut redis.clone()).await
    }
}
