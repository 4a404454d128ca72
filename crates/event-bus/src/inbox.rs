//! Exactly-once effects: a handler's database writes and the record that it ran for
//! an event commit together, or not at all.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

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
    let fresh = sqlx::query(
        "INSERT INTO inbox (consumer_group, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(event_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        Ok(Some(tx))
    } else {
        tx.rollback().await?;
        Ok(None)
    }
}
