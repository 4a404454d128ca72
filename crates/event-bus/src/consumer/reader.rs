//! Reading: entries flow to the lanes as fast as slots free up.
//!
//! The reader holds one slot per entry in flight (`max_in_flight` in all); a slot is
//! freed when its entry is done (acknowledged, failed or dead-lettered). It reads as
//! soon as one slot is free, asking for as many entries as there are free slots (up to
//! `batch_size`), so a slow handler holds back only its own key, never the next read.
//!
//! It first re-reads what this consumer had been given and not acknowledged (`0`,
//! paged by the last id), then new entries (`>`, waiting up to `block`).
//!
//! On a single server one `XREADGROUP` reads every stream. On a Redis Cluster, where a
//! command may only name keys of one slot, each stream (partition) has a read loop and
//! a blocking connection of its own; the loops share the slots, each asking for at most
//! its share of them, so no loop blocked on a quiet partition holds slots another needs.

use std::sync::Arc;

use redis::streams::StreamReadReply;
use service_kit::redis::Connection;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::entry::{Entry, to_entry};
use super::lanes::{Lanes, Work};
use super::shared::{Backoff, Shared};

/// Where the next read starts.
enum Position {
    /// This consumer's own pending entries after these ids, one per stream.
    Pending(Vec<String>),
    /// Entries no consumer of the group has been given.
    New,
}

/// Reads and dispatches until `cancel`.
pub(super) async fn run(shared: &Arc<Shared>, lanes: &Lanes, cancel: &CancellationToken) {
    let config = &shared.config;
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let loops: Vec<&[String]> = if shared.client.is_cluster() {
        config.streams.chunks(1).collect()
    } else {
        vec![config.streams.as_slice()]
    };
    let share = (config.max_in_flight / loops.len().max(1)).clamp(1, config.batch_size.max(1));
    futures::future::join_all(
        loops
            .into_iter()
            .map(|streams| read_loop(shared, lanes, cancel, &slots, streams, share)),
    )
    .await;
}

/// Reads `streams` (one slot's) and dispatches, `most` entries a read at most, until
/// `cancel`.
async fn read_loop(
    shared: &Arc<Shared>,
    lanes: &Lanes,
    cancel: &CancellationToken,
    slots: &Arc<Semaphore>,
    streams: &[String],
    most: usize,
) {
    let config = &shared.config;
    let mut position = Position::Pending(vec!["0".to_owned(); streams.len()]);
    let mut backoff = Backoff::new();
    let mut connection: Option<Connection> = None;
    loop {
        let mut held = tokio::select! {
            () = cancel.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let more = slots.available_permits().min(most - 1);
        if more > 0
            && let Ok(slots) = slots.clone().try_acquire_many_owned(more as u32)
        {
            held.merge(slots);
        }
        let read = read(
            shared,
            &mut connection,
            streams,
            &position,
            held.num_permits(),
            cancel,
        );
        match read.await {
            Ok(entries) => {
                backoff.reset();
                if let Position::Pending(after) = &mut position {
                    if entries.is_empty() {
                        position = Position::New;
                    } else {
                        for (stream, after) in streams.iter().zip(after.iter_mut()) {
                            if let Some(last) = entries.iter().rev().find(|e| e.stream == *stream) {
                                after.clone_from(&last.id);
                            }
                        }
                    }
                }
                for entry in entries {
                    let in_flight = held.split(1);
                    lanes.dispatch(Work {
                        entry,
                        _in_flight: in_flight,
                    });
                }
            }
            Err(error) => {
                shared.recover(&error).await;
                if error.is_unrecoverable_error() || error.is_timeout() {
                    // A connection to a node that died: connect again, to the cluster's
                    // new topology.
                    connection = None;
                }
                if !backoff.wait(&config.group, &error, cancel).await {
                    return;
                }
            }
        }
    }
}

async fn read(
    shared: &Shared,
    connection: &mut Option<Connection>,
    streams: &[String],
    position: &Position,
    count: usize,
    cancel: &CancellationToken,
) -> redis::RedisResult<Vec<Entry>> {
    let config = &shared.config;
    let mut command = redis::cmd("XREADGROUP");
    command
        .arg("GROUP")
        .arg(&config.group)
        .arg(&config.consumer)
        .arg("COUNT")
        .arg(count);
    match position {
        Position::Pending(after) => {
            command.arg("STREAMS").arg(streams).arg(after);
        }
        Position::New => {
            command
                .arg("BLOCK")
                .arg(config.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(streams);
            for _ in streams {
                command.arg(">");
            }
        }
    }
    let mut redis = match connection {
        Some(connection) => connection.clone(),
        None => connection.insert(shared.reads().await?).clone(),
    };
    let reply: Option<StreamReadReply> = tokio::select! {
        // Blocking reads end early on shutdown; an unread entry is simply not taken.
        () = cancel.cancelled() => return Ok(Vec::new()),
        reply = command.query_async(&mut redis) => reply?,
    };
    Ok(reply
        .map(|reply| {
            reply
                .keys
                .into_iter()
                .flat_map(|key| {
                    let stream = key.key;
                    key.ids
                        .into_iter()
                        .map(move |entry| to_entry(&stream, entry))
                })
                .collect()
        })
        .unwrap_or_default())
}
