//! The tables the bus keeps in a service's own database.
//!
//! They are installed by [`install`] rather than by each service's migrations, so the
//! bus owns its schema in one place; every statement is idempotent and runs under an
//! advisory lock, so replicas starting together do not race.

use sqlx::PgPool;

const LOCK: i64 = 0x5357_4255_5331; // "SWBUS1"

/// The statements, in a file of their own so the query macros' check database can be
/// built from the same text (scripts/lib/queries.sh).
const SCHEMA: &str = include_str!("../schema.sql");

/// Creates the `outbox` and `inbox` tables if they do not exist.
pub async fn install(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await
}
