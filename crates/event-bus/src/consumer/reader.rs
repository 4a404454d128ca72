//! Reading: entries flow to the lanes as fast as slots free up.
//!
//! The reader holds one slot per entry in flight (`max_in_flight` in all); a slot is
//! freed when its entry is done (acknowledged, failed or dead-lettered). It reads as
//! soon as one slot is free, asking for as many entries as there are free slots (up to
//! `batch_size`), so a slow handler holds back only its own key, never the next read.
//!
//! It first re-reads what this consumer had been given and not acknowledged (`0`,
//! paged by the last id), then new entries (`>`, waiting up to `block`).

use std::sync::Arc;

use redis::streams::StreamReadReply;
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
    let mut position = Position::Pending(vec!["0".to_owned(); config.streams.len()]);
    let mut backoff = Backoff::new();
    loop {
        let mut held = tokio::select! {
            () = cancel.cancelled() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let more = slots.available_permits().min(config.batch_size.max(1) - 1);
        if more > 0
            && let Ok(slots) = slots.clone().try_acquire_many_owned(more as u32)
        {
            held.merge(slots);
        }
        match read(shared, &position, held.num_permits(), cancel).await {
            Ok(entries) => {
                backoff.reset();
                if let Position::Pending(after) = &mut position {
                    if entries.is_empty() {
                        position = Position::New;
                    } else {
                        for (stream, after) in config.streams.iter().zip(after.iter_mut()) {
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
                if !backoff.wait(&config.group, &error, cancel).await {
                    return;
                }
            }
        }
    }
}

async fn read(
    shared: &Shared,
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
            command.arg("STREAMS").arg(&config.streams).arg(after);
        }
        Position::New => {
            command
                .arg("BLOCK")
                .arg(config.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&config.streams);
            for _ in &config.streams {
                command.arg(">");
            }
        }
    }
    let mut redis = shared.reads().await?;
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
