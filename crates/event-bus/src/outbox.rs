//! Writing events in the caller's transaction, and waking the relay when it commits.

use std::sync::Arc;

use sqlx::{Postgres, Transaction};
use tokio::sync::watch;

use crate::envelope::Envelope;
use crate::stream::Stream;

/// Stores `envelope` for `stream` (the partition of its key) as part of `tx`: it is
/// published if and only if `tx` commits. Commit with [`Wake::commit`] so this
/// process's relay publishes it at once.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    stream: &Stream,
    envelope: &Envelope,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (id, stream, envelope) VALUES ($1, $2, $3)")
        .bind(envelope.id)
        .bind(stream.partition_for(envelope))
        .bind(sqlx::types::Json(envelope))
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// For a handler of `cause`: enqueues a new event of `event_type` from `source`,
/// carrying `payload`, that continues `cause`'s correlation.
pub async fn enqueue_caused_by(
    tx: &mut Transaction<'_, Postgres>,
    stream: &Stream,
    cause: &Envelope,
    source: &str,
    event_type: &str,
    payload: &impl serde::Serialize,
) -> Result<(), crate::error::HandlerError> {
    let event = Envelope::new(event_type, source, payload)
        .map_err(crate::error::HandlerError::poison)?
        .caused_by(cause);
    enqueue(tx, stream, &event)
        .await
        .map_err(crate::error::HandlerError::retry)
}

/// Tells this process's relay that outbox rows were committed, so they are published
/// within a round trip of the commit. Cheap to clone; one per process, shared by
/// everything that writes to the outbox and the relay.
///
/// The wake goes through memory, not the database: no `NOTIFY` (which takes a
/// server-wide lock at every commit that sent one) and no listening connection. Rows
/// no wake announced (another replica's, or a process that died between commit and
/// publishing) are found by the relay's sweep.
#[derive(Clone, Debug)]
pub struct Wake(Arc<watch::Sender<u64>>);

impl Default for Wake {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `tx`, which wrote outbox rows, and wakes the relay.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> sqlx::Result<()> {
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    /// Wakes the relay: rows were committed.
    pub fn committed(&self) {
        self.0
            .send_modify(|commits| *commits = commits.wrapping_add(1));
    }

    /// A receiver that sees every wake after it was made.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
