//! Writing events in the caller's transaction.

use sqlx::{Postgres, Transaction};

use crate::envelope::Envelope;

/// The channel the relay listens on.
pub const CHANNEL: &str = "event_bus_outbox";

/// Stores `envelope` for `stream` as part of `tx`: it is published if and only if `tx`
/// commits. Wakes the relay on commit.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    stream: &str,
    envelope: &Envelope,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (id, stream, envelope) VALUES ($1, $2, $3)")
        .bind(envelope.id)
        .bind(stream)
        .bind(sqlx::types::Json(envelope))
        .execute(&mut **tx)
        .await?;
    // NOTIFY is delivered at commit, and not at all on rollback.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// For a handler of `cause`: enqueues a new event of `event_type` from `source`,
/// carrying `payload`, that continues `cause`'s correlation.
pub async fn enqueue_caused_by(
    tx: &mut Transaction<'_, Postgres>,
    stream: &str,
    cause: &Envelope,
    source: &str,
    event_type: &str,
    payload: &impl serde::Serialize,
) -> Result<(), crate::HandlerError> {
    let event = Envelope::new(event_type, source, payload)
        .map_err(crate::HandlerError::poison)?
        .caused_by(cause);
    enqueue(tx, stream, &event)
        .await
        .map_err(crate::HandlerError::retry)
}
