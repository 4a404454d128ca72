//! Exactly-once effects: a handler's database writes and the record that it ran for
//! an event commit together, or not at all.
//!
//! Two ways to use it:
//!
//! - an [`Effect`], given to [`Consumer::with_effects`](crate::Consumer::with_effects):
//!   the consumer opens the transaction, records the events in the inbox (one
//!   statement), applies the effects of all the events ready together at once (so an
//!   effect can write a batch with one statement per kind of write) and commits. A
//!   call to another system goes in [`Effect::prepare`], before the transaction opens.
//! - [`begin`], for a handler of one event at a time: it opens its own transaction.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::time::Instant;
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::outbox::Tx;

/// What a service does with events, written in a transaction the consumer owns. The
/// effect neither begins nor commits: the consumer does, with the events' inbox marks,
/// and the events the effect emits ([`Tx::enqueue`]) go to the outbox in one statement.
///
/// `events` are the events ready together, each new to the inbox, in stream order: an
/// effect writes them set-based (one `UPDATE … FROM unnest(…)` for all) where it can.
/// It applies all of them or fails: the consumer then rolls the batch back and hands
/// each event to the effect again, alone, so one bad event never fails its
/// neighbours. An effect may so run more than once for one event: only what it writes
/// through `tx` may count.
pub trait Effect: Send + Sync + 'static {
    /// What must happen outside any transaction before `events` are applied: a call to
    /// another system that is safe to repeat (a charge under an idempotency key, a
    /// read), whose answers the effect keeps ([`Answers`]) for `apply` to record. The
    /// consumer calls it before it opens the events' transaction, so no transaction
    /// (nor its row locks) waits on that system; again for each event when a batch
    /// falls back to one by one; and for events the inbox may then find processed.
    ///
    /// Returns the ids of the events it found to have no effect at all: the consumer
    /// acknowledges those without a transaction or an inbox mark. By default, nothing
    /// to do and every event applied.
    fn prepare<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Result<HashSet<Uuid>, HandlerError>> {
        let _ = events;
        Box::pin(async { Ok(HashSet::new()) })
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// What an effect's [`Effect::prepare`] learned for each event (a provider's answer, a
/// user read from another service), kept by event id until the effect's `apply` takes
/// it. An answer no transaction took (the inbox found its event processed) is dropped
/// after a minute.
pub struct Answers<T> {
    kept: Mutex<HashMap<Uuid, (Instant, T)>>,
}

impl<T> Default for Answers<T> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Answers<T> {
    /// How long an answer waits for its event's transaction.
    const KEPT: Duration = Duration::from_secs(60);

    fn kept(&self) -> MutexGuard<'_, HashMap<Uuid, (Instant, T)>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `answers`, by event id (replacing an earlier answer for one).
    pub fn keep(&self, answers: impl IntoIterator<Item = (Uuid, T)>) {
        let now = Instant::now();
        let mut kept = self.kept();
        kept.retain(|_, (at, _)| now.duration_since(*at) < Self::KEPT);
        kept.extend(answers.into_iter().map(|(id, answer)| (id, (now, answer))));
    }

    /// Takes the answers kept for `events`.
    pub fn take(&self, events: &[Envelope]) -> HashMap<Uuid, T> {
        let mut kept = self.kept();
        events
            .iter()
            .filter_map(|event| Some((event.id, kept.remove(&event.id)?.1)))
            .collect()
    }
}

/// Opens a transaction that has already recorded `event_id` as processed by `group`.
/// The handler writes its effect in it and commits. `None` means the event was already
/// processed: skip it (and acknowledge it).
///
/// Two deliveries of one event racing each other serialise on the inbox row: the
/// second waits for the first to commit, then sees it and gets `None`.
pub async fn begin(pool: &PgPool, group: &str, event_id: Uuid) -> sqlx::Result<Option<Tx>> {
    let mut tx = Tx::begin(pool).await?;
    let fresh = record(&mut tx, group, &[event_id]).await?;
    if fresh.is_empty() {
        tx.rollback().await?;
        Ok(None)
    } else {
        Ok(Some(tx))
    }
}

/// Records `event_ids` as processed by `group` in `tx`; returns those not recorded
/// before (one round trip for any number).
pub(crate) async fn record(
    tx: &mut Transaction<'static, Postgres>,
    group: &str,
    event_ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "INSERT INTO inbox (consumer_group, event_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING RETURNING event_id",
        group,
        event_ids,
    )
    .fetch_all(&mut **tx)
    .await
}
