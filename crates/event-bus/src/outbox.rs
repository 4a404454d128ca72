//! Writing events in the caller's transaction, and handing them to the relay when it
//! commits.
//!
//! A [`Tx`] is a Postgres transaction that also holds the events it caused. They go to
//! the `outbox` table in one statement, however many there are, just before the
//! commit; once the commit succeeded the same events, already in memory, go to this
//! process's relay ([`Wake`]), which publishes them without reading them back.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::stream::Stream;

/// An event written by a transaction: its id, its stream partition and its envelope as
/// JSON, as the outbox row and the stream entry hold it.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub id: Uuid,
    pub stream: String,
    pub envelope: String,
}

/// A transaction and the events it causes: they are published if and only if it
/// commits. Queries run on it as on the transaction it derefs to; commit it with
/// [`Wake::commit`].
pub struct Tx {
    tx: Transaction<'static, Postgres>,
    staged: Vec<Staged>,
    wakes: Vec<Arc<Notify>>,
    after_commit: Vec<AfterCommit>,
}

/// What a transaction does once it has committed, and only then.
type AfterCommit = Box<dyn FnOnce() + Send + Sync>;

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("tx", &self.tx)
            .field("staged", &self.staged)
            .field("wakes", &self.wakes)
            .field("after_commit", &self.after_commit.len())
            .finish()
    }
}

impl Deref for Tx {
    type Target = Transaction<'static, Postgres>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl From<Transaction<'static, Postgres>> for Tx {
    fn from(tx: Transaction<'static, Postgres>) -> Self {
        Self {
            tx,
            staged: Vec::new(),
            wakes: Vec::new(),
            after_commit: Vec::new(),
        }
    }
}

impl Tx {
    /// Begins a transaction on `pool`.
    pub async fn begin(pool: &PgPool) -> sqlx::Result<Self> {
        Ok(pool.begin().await?.into())
    }

    /// Adds `envelope` to what this transaction publishes, to the partition of `stream`
    /// its key picks. Nothing is sent to the database until the commit.
    pub fn enqueue(&mut self, stream: &Stream, envelope: &Envelope) -> serde_json::Result<()> {
        self.staged.push(Staged {
            id: envelope.id,
            stream: stream.partition_for(envelope),
            envelope: serde_json::to_string(envelope)?,
        });
        Ok(())
    }

    /// Wakes `worker` once this transaction has committed: a worker in this process
    /// that waits for the rows it writes (a queue of emails, say) takes them at once
    /// instead of at its next poll. Nothing wakes it if the transaction rolls back.
    pub fn wake_after_commit(&mut self, worker: &Arc<Notify>) {
        if !self.wakes.iter().any(|w| Arc::ptr_eq(w, worker)) {
            self.wakes.push(Arc::clone(worker));
        }
    }

    /// Runs `action` once this transaction has committed: what must count only work
    /// that took effect (a metric of it, say). Never if it rolls back, fails to commit
    /// or is dropped, so a batch retried after a rollback does it once, for the retry.
    pub fn after_commit(&mut self, action: impl FnOnce() + Send + Sync + 'static) {
        self.after_commit.push(Box::new(action));
    }

    /// How many events this transaction publishes so far.
    pub fn events(&self) -> usize {
        self.staged.len()
    }

    /// Writes the outbox rows (one statement for all of them) and commits. Its events
    /// are then left to the relay's sweep: commit with [`Wake::commit`] to have them
    /// published at once.
    pub async fn commit(self) -> sqlx::Result<()> {
        self.finish().await.map(drop)
    }

    /// Writes the outbox rows and commits; returns the events committed.
    async fn finish(mut self) -> sqlx::Result<Vec<Staged>> {
        if !self.staged.is_empty() {
            write_rows(&mut self.tx, &self.staged).await?;
        }
        self.tx.commit().await?;
        for worker in &self.wakes {
            worker.notify_one();
        }
        for action in self.after_commit {
            action();
        }
        Ok(self.staged)
    }

    /// Rolls back: nothing it wrote, and none of its events, remain.
    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }
}

/// Every staged event as an outbox row, in one statement.
async fn write_rows(
    tx: &mut Transaction<'static, Postgres>,
    staged: &[Staged],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = staged.iter().map(|s| s.id).collect();
    let streams: Vec<&str> = staged.iter().map(|s| s.stream.as_str()).collect();
    let envelopes: Vec<&str> = staged.iter().map(|s| s.envelope.as_str()).collect();
    sqlx::query!(
        "INSERT INTO outbox (id, stream, envelope)
         SELECT id, stream, envelope::jsonb
         FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY
              AS e(id, stream, envelope, n)
         ORDER BY n",
        &ids,
        &streams as &[&str],
        &envelopes as &[&str],
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// For a handler of `cause`: enqueues a new event of `event_type` from `source`,
/// carrying `payload`, that continues `cause`'s correlation.
pub fn enqueue_caused_by(
    tx: &mut Tx,
    stream: &Stream,
    cause: &Envelope,
    source: &str,
    event_type: &str,
    payload: &impl serde::Serialize,
) -> Result<(), HandlerError> {
    let event = Envelope::new(event_type, source, payload)
        .map_err(HandlerError::poison)?
        .caused_by(cause);
    tx.enqueue(stream, &event).map_err(HandlerError::poison)
}

/// Batches of committed events waiting for the relay; past this many the newest are
/// left to the relay's sweep, which finds every row no one published.
const WAITING_BATCHES: usize = 4096;

/// Hands committed events to this process's relay, which publishes them within a round
/// trip of the commit. Cheap to clone; one per process, shared by everything that
/// writes to the outbox and the relay.
///
/// The events go through memory, not the database: no `NOTIFY` (which takes a
/// server-wide lock at every commit that sent one), no listening connection, and the
/// relay reads nothing back. Rows this hand-over misses (another replica's, a process
/// that died between commit and publishing, a relay too far behind) are found by the
/// relay's sweep.
#[derive(Clone, Debug)]
pub struct Wake(Arc<Handover>);

#[derive(Debug)]
struct Handover {
    sender: mpsc::Sender<Vec<Staged>>,
    receiver: Mutex<Option<mpsc::Receiver<Vec<Staged>>>>,
}

impl Default for Wake {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(WAITING_BATCHES);
        Self(Arc::new(Handover {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }))
    }
}

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits `tx` and hands its events to the relay.
    pub async fn commit(&self, tx: Tx) -> sqlx::Result<()> {
        let staged = tx.finish().await?;
        if !staged.is_empty() {
            self.committed(staged);
        }
        Ok(())
    }

    /// Hands events committed just now to the relay; if it is too far behind (or none
    /// runs) they stay in the outbox for its sweep.
    pub(crate) fn committed(&self, staged: Vec<Staged>) {
        let _ = self.0.sender.try_send(staged);
    }

    /// The committed events, for the one relay that publishes them; `None` once taken.
    pub(crate) fn take(&self) -> Option<mpsc::Receiver<Vec<Staged>>> {
        self.0
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Gives the events back for the next relay to take (a relay that stopped).
    pub(crate) fn put_back(&self, receiver: mpsc::Receiver<Vec<Staged>>) {
        *self
            .0
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(receiver);
    }
}
