//! Running handlers: concurrently across keys, in stream order within one.
//!
//! An entry with a key (the consumer's `order_key`) joins its key's lane: a queue that
//! one task works through in arrival order, which is stream order, whether its entries
//! came in one read or many. The lane ends when its queue is empty; the next entry of
//! that key starts a new one. An entry without a key runs on its own. At most
//! `concurrency` handlers run at once, across all lanes; a consumer of effects hands
//! them to the batcher instead, which bounds itself.
//!
//! A handler that fails (to be retried) holds back the entries of its key already
//! queued behind it: they stay pending and are reclaimed after it, in stream order.
//! Poison is dead-lettered and holds nothing back.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::acks::Done;
use super::batch::Batcher;
use super::dead::dead_letter;
use super::entry::Entry;
use super::handler::{Handling, run_handler};
use super::shared::Shared;
use crate::error::HandlerError;

/// An entry on its way through, holding its place in the reader's in-flight bound
/// until it is done.
pub(super) struct Work {
    pub entry: Entry,
    pub _in_flight: Option<OwnedSemaphorePermit>,
}

/// The handlers of one consumer; cheap to clone.
#[derive(Clone)]
pub(super) struct Lanes(Arc<Inner>);

struct Inner {
    shared: Arc<Shared>,
    /// The queue of each key whose lane is running.
    queued: Mutex<HashMap<String, VecDeque<Work>>>,
    running: Semaphore,
    tasks: TaskTracker,
    acks: mpsc::UnboundedSender<Done>,
    /// Where effects go, for a consumer of effects.
    batcher: Option<Batcher>,
    /// Stops every lane where it is (the consumer's future was dropped).
    abandoned: CancellationToken,
}

impl Lanes {
    pub fn new(
        shared: Arc<Shared>,
        acks: mpsc::UnboundedSender<Done>,
        batcher: Option<Batcher>,
        abandoned: CancellationToken,
    ) -> Self {
        let concurrency = shared.config.concurrency.max(1);
        Self(Arc::new(Inner {
            shared,
            queued: Mutex::new(HashMap::new()),
            running: Semaphore::new(concurrency),
            tasks: TaskTracker::new(),
            acks,
            batcher,
            abandoned,
        }))
    }

    /// Starts `work`: in its key's lane, on its own, or (a type this consumer does not
    /// handle) straight to acknowledgement.
    pub fn dispatch(&self, work: Work) {
        let inner = &self.0;
        let config = &inner.shared.config;
        if let (Ok(envelope), Some(wanted)) = (&work.entry.envelope, &config.event_types)
            && !wanted.contains(&envelope.event_type)
        {
            // Not for us (a newer producer, another consumer's type): acknowledge.
            metrics::counter!("events_unknown_total", "group" => config.group.clone()).increment(1);
            inner.acknowledge(&work.entry);
            return;
        }
        let key = match (&work.entry.envelope, config.order_key) {
            (Ok(envelope), Some(order_key)) => order_key(envelope),
            _ => None,
        };
        let Some(key) = key else {
            let inner = self.0.clone();
            let abandoned = inner.abandoned.clone();
            self.0.tasks.spawn(
                abandoned.run_until_cancelled_owned(async move { inner.handle(work).await }),
            );
            return;
        };
        let Ok(mut queued) = inner.queued.lock() else {
            return;
        };
        match queued.entry(key) {
            Slot::Occupied(mut lane) => lane.get_mut().push_back(work),
            Slot::Vacant(free) => {
                let key = free.key().clone();
                free.insert(VecDeque::from([work]));
                let inner = self.0.clone();
                let abandoned = inner.abandoned.clone();
                self.0.tasks.spawn(
                    abandoned.run_until_cancelled_owned(async move { inner.lane(key).await }),
                );
            }
        }
    }

    /// Waits for every handler started to finish. Nothing may be dispatched after.
    pub async fn finish(&self) {
        self.0.tasks.close();
        self.0.tasks.wait().await;
    }
}

impl Inner {
    /// Works through `key`'s queue until it is empty, or an entry fails.
    async fn lane(&self, key: String) {
        loop {
            let next = {
                let Ok(mut queued) = self.queued.lock() else {
                    return;
                };
                match queued.get_mut(&key).and_then(VecDeque::pop_front) {
                    Some(work) => work,
                    None => {
                        queued.remove(&key);
                        return;
                    }
                }
            };
            if !self.handle(next).await {
                // Left pending, to be reclaimed after the entry that failed.
                if let Ok(mut queued) = self.queued.lock() {
                    queued.remove(&key);
                }
                return;
            }
        }
    }

    /// Runs the handler for `work`; `false` if it failed and will be retried.
    async fn handle(&self, work: Work) -> bool {
        let shared = &self.shared;
        let group = &shared.config.group;
        let outcome = match (&shared.handling, &self.batcher) {
            (Handling::Effects(_), Some(batcher)) => batcher.apply(&work.entry).await,
            (Handling::Each(handler), _) => {
                let Ok(_running) = self.running.acquire().await else {
                    return false;
                };
                run_handler(handler, &work.entry, shared.config.handler_timeout).await
            }
            (Handling::Effects(_), None) => Err(HandlerError::Retry(anyhow::anyhow!(
                "no batcher is running"
            ))),
        };
        match outcome {
            Ok(()) => {
                metrics::counter!("events_processed_total", "group" => group.clone()).increment(1);
                self.acknowledge(&work.entry);
                true
            }
            Err(HandlerError::Retry(error)) => {
                metrics::counter!("events_failed_total", "group" => group.clone()).increment(1);
                let error = format!("{error:#}");
                tracing::warn!(%group, entry = %work.entry.id, error, "handler failed; will retry");
                shared.remember_error(&work.entry.id, error);
                false
            }
            Err(HandlerError::Poison(error)) => {
                if let Err(failed) =
                    dead_letter(shared, &work.entry, &format!("{error:#}"), 1).await
                {
                    tracing::warn!(%group, entry = %work.entry.id, error = %failed, "cannot dead-letter; will retry");
                    shared.remember_error(&work.entry.id, format!("{error:#}"));
                }
                true
            }
        }
    }

    fn acknowledge(&self, entry: &Entry) {
        // The acker outlives every lane; a send cannot fail while one runs.
        let _ = self.acks.send((entry.stream.clone(), entry.id.clone()));
    }
}
