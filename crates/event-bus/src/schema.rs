//! The tables the bus keeps in a service's own database.
//!
//! They are installed by [`install`] rather than by each service's migrations, so the
//! bus owns its schema in one place; every statement is idempotent and runs under an
//! advisory lock, so replicas starting together do not race.

use sqlx::PgPool;

const LOCK: i64 = 0x5357_4255_5331; // "SWBUS1"

const STATEMENTS: &[&str] = &[
    // Events waiting to be published, in commit order per stream.
    "CREATE TABLE IF NOT EXISTS outbox (
        seq          bigserial   PRIMARY KEY,
        id           uuid        NOT NULL UNIQUE,
        stream       text        NOT NULL,
        envelope     jsonb       NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )",
    "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
    "CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL",
    // Events a consumer group has applied, so a redelivery is a no-op.
    "CREATE TABLE IF NOT EXISTS inbox (
        consumer_group text        NOT NULL,
        event_id       uuid        NOT NULL,
        processed_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer_group, event_id)
    )",
];

/// Creates the `outbox` and `inbox` tables if they do not exist.
pub async fn install(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    for statement in STATEMENTS {
        sqlx::query(*statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}
