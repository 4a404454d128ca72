//! Exactly-once effects: a handler's database writes and the record that it ran for
//! an event commit together, or not at all.
//!
//! Two ways to use it:
//!
//! - an [`Effect`], given to [`Consumer::with_effects`](crate::Consumer::with_effects):
//!   the consumer opens the transaction, records the events in the inbox, applies the
//!   effects and commits, several events to one transaction when they are ready
//!   together. For effects that are database writes alone.
//! - [`begin`], for a handler that must do more than write (call a card provider): it
//!   opens its own transaction, one per event.

use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::HandlerError;

/// What a service does with an event, written in a transaction the consumer owns. The
/// effect neither begins nor commits: the consumer does, with the event's inbox mark,
/// and perhaps with other events' effects.
///
/// An effect may run more than once for one event (its batch rolled back because a
/// neighbour failed, then run alone): only what it writes through `tx` may count.
pub trait Effect: Send + Sync + 'static {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// Opens a transaction that has already recorded `event_id` as processed by `group`.
/// The handler writes its effect in it and commits. `None` means the event was already
/// processed: skip it (and acknowledge it).
///
/// Two deliveries of one event racing each other serialise on the inbox row: the
/// second waits for the first to commit, then sees it and gets `None`.
pub async fn begin(
    pool: &PgPool,
    group: &str,
    event_id: Uuid,
) -> sqlx::Result<Option<Transaction<'static, Postgres>>> {
    let mut tx = pool.begin().await?;
    let fresh = record(&mut tx, group, &[event_id]).await?;
    if fresh.is_empty() {
        tx.rollback().await?;
        Ok(None)
    } else {
        Ok(Some(tx))
    }
}

/// [`begin`] for `event`, in a handler: a failure to open is worth retrying.
pub async fn open(
    pool: &PgPool,
    group: &str,
    event: &Envelope,
) -> Result<Option<Transaction<'static, Postgres>>, HandlerError> {
    begin(pool, group, event.id)
        .await
        .map_err(HandlerError::retry)
}

/// Records `event_ids` as processed by `group` in `tx`; returns those not recorded
/// before (one round trip for any number).
pub(crate) async fn record(
    tx: &mut Transaction<'static, Postgres>,
    group: &str,
    event_ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "INSERT INTO inbox (consumer_group, event_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(group)
    .bind(event_ids)
    .fetch_all(&mut **tx)
    .await
}
