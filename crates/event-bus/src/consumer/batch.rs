//! Effects in shared transactions: events ready together commit together.
//!
//! A lane hands its next event to the batcher and waits for the outcome. The batcher
//! takes every event waiting (up to [`MOST_AT_ONCE`]) and, in one transaction, records
//! them in the inbox (one statement), applies the effect of each one not seen before,
//! and commits: one commit for the lot. Under load, events gather while a transaction
//! runs, so the commits per event fall as the load rises; an event alone commits at
//! once, by itself.
//!
//! An effect that fails rolls its batch back, and each event of the batch then runs
//! alone, in a transaction of its own: the failure stays its own, and its neighbours
//! commit. One batch runs at a time per consumer, so a process's batches never wait on
//! each other's row locks.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::entry::Entry;
use super::handler::{Effects, traced};
use super::shared::Shared;
use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox;

/// Most events in one transaction: bounds how long its row locks are held.
pub(super) const MOST_AT_ONCE: usize = 64;

struct Job {
    envelope: Envelope,
    done: oneshot::Sender<Result<(), HandlerError>>,
}

/// The lanes' side of the batcher.
#[derive(Clone)]
pub(super) struct Batcher(mpsc::UnboundedSender<Job>);

impl Batcher {
    /// The batcher, and its loop to spawn; the loop ends when every `Batcher` is dropped.
    pub fn start(
        shared: Arc<Shared>,
        effects: Arc<Effects>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
        let run = async move {
            let mut batch = Vec::new();
            while jobs.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
                let outcomes = apply(&shared, &effects, &batch).await;
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    // A lane that stopped waiting no longer needs its outcome.
                    let _ = job.done.send(outcome);
                }
            }
        };
        (Self(sender), run)
    }

    /// Applies `entry`'s effect, with others if they are ready too.
    pub async fn apply(&self, entry: &Entry) -> Result<(), HandlerError> {
        let envelope = match &entry.envelope {
            Ok(envelope) => envelope.clone(),
            Err(reason) => return Err(HandlerError::Poison(anyhow::anyhow!("{reason}"))),
        };
        let (done, outcome) = oneshot::channel();
        self.0
            .send(Job { envelope, done })
            .map_err(|_| HandlerError::Retry(anyhow::anyhow!("the consumer is stopping")))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(HandlerError::Retry(anyhow::anyhow!("the consumer stopped"))))
    }
}

/// Each job's outcome, in order: together in one transaction if they all succeed,
/// else each alone.
async fn apply(shared: &Shared, effects: &Effects, jobs: &[Job]) -> Vec<Result<(), HandlerError>> {
    let limit = shared.config.handler_timeout;
    if jobs.len() > 1 {
        match tokio::time::timeout(limit, together(shared, effects, jobs)).await {
            Ok(Ok(())) => return jobs.iter().map(|_| Ok(())).collect(),
            Ok(Err(error)) => {
                tracing::debug!(group = %shared.config.group, error = %error, events = jobs.len(), "a batch failed; applying its events one by one");
            }
            Err(_) => {
                tracing::debug!(group = %shared.config.group, events = jobs.len(), "a batch timed out; applying its events one by one");
            }
        }
        metrics::counter!("events_batches_split_total", "group" => shared.config.group.clone())
            .increment(1);
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let outcome = tokio::time::timeout(limit, alone(shared, effects, &job.envelope))
            .await
            .unwrap_or_else(|_| Err(HandlerError::Retry(anyhow::anyhow!("handler timed out"))));
        outcomes.push(outcome);
    }
    outcomes
}

/// Every job's effect in one transaction, or none.
async fn together(shared: &Shared, effects: &Effects, jobs: &[Job]) -> Result<(), HandlerError> {
    let mut tx = effects.pool.begin().await.map_err(HandlerError::retry)?;
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.envelope.id).collect();
    let mut fresh: HashSet<Uuid> = inbox::record(&mut tx, &shared.config.group, &ids)
        .await
        .map_err(HandlerError::retry)?
        .into_iter()
        .collect();
    for job in jobs {
        // An event seen before, or twice in this batch, takes effect once.
        if fresh.remove(&job.envelope.id) {
            traced(&job.envelope, effects.effect.apply(&mut tx, &job.envelope)).await?;
        }
    }
    effects.wake.commit(tx).await.map_err(HandlerError::retry)
}

/// One event's effect in a transaction of its own.
async fn alone(
    shared: &Shared,
    effects: &Effects,
    envelope: &Envelope,
) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::begin(&effects.pool, &shared.config.group, envelope.id)
        .await
        .map_err(HandlerError::retry)?
    else {
        return Ok(());
    };
    traced(envelope, effects.effect.apply(&mut tx, envelope)).await?;
    effects.wake.commit(tx).await.map_err(HandlerError::retry)
}
