//! Effects in shared transactions: events ready together commit together.
//!
//! A lane hands its next event to the batcher and waits for the outcome. The batcher
//! takes every event waiting (up to [`MOST_AT_ONCE`]), lets the effect do what it must
//! outside a transaction (`Effect::prepare`: a card provider's charges) and, in one
//! transaction, records
//! them in the inbox (one statement), hands those not seen before to the effect at
//! once (which writes each kind of change for all of them in one statement), writes
//! the events they emit to the outbox (one statement) and commits: one commit for the
//! lot. Under load, events gather while a transaction
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

use super::entry::Entry;
use tracing::Instrument;
use uuid::Uuid;

use super::handler::{Effects, Together};
use super::shared::Shared;
use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox;
use crate::outbox::Tx;

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
    let envelopes: Vec<&Envelope> = jobs.iter().map(|job| &job.envelope).collect();
    in_one_transaction(shared, effects, &envelopes).await
}

/// One event's effect in a transaction of its own.
async fn alone(
    shared: &Shared,
    effects: &Effects,
    envelope: &Envelope,
) -> Result<(), HandlerError> {
    in_one_transaction(shared, effects, &[envelope]).await
}

/// Records `envelopes` in the inbox and applies the effect to those new to it, in one
/// transaction, committed with the events the effect emitted.
async fn in_one_transaction(
    shared: &Shared,
    effects: &Effects,
    envelopes: &[&Envelope],
) -> Result<(), HandlerError> {
    let idle = effects.effect.prepare(envelopes).await?;
    let envelopes: Vec<&Envelope> = envelopes
        .iter()
        .copied()
        .filter(|e| !idle.contains(&e.id))
        .collect();
    if envelopes.is_empty() {
        return Ok(());
    }
    let mut tx = Tx::begin(&effects.pool)
        .await
        .map_err(HandlerError::retry)?;
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.id).collect();
    let mut fresh: HashSet<Uuid> = inbox::record(&mut tx, &shared.config.group, &ids)
        .await
        .map_err(HandlerError::retry)?
        .into_iter()
        .collect();
    // An event seen before, or twice in this batch, takes effect once.
    let new: Vec<&Envelope> = envelopes
        .iter()
        .copied()
        .filter(|e| fresh.remove(&e.id))
        .collect();
    if new.is_empty() {
        return tx.rollback().await.map_err(HandlerError::retry);
    }
    let handling = Together::of(&new);
    let span = tracing::info_span!("events", group = %shared.config.group, events = new.len());
    let applied = effects
        .effect
        .apply(&mut tx, &handling.events)
        .instrument(span)
        .await;
    handling.finish(&new);
    applied?;
    effects.wake.commit(tx).await.map_err(HandlerError::retry)
}
