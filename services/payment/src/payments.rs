//! Payments: one per order, and their storage.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// How a payment ended: stored as the text the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Declined,
    Refunded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
        }
    }
}

/// A payment as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub user_id: Uuid,
    #[serde(skip)]
    pub provider_ref: String,
}

/// A payment about to be recorded.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub status: Status,
    pub provider_ref: String,
}

/// Serialises everything done about one order, across this service's replicas, until
/// `tx` ends: a charge and a cancellation of one order never interleave.
pub async fn lock_order(tx: &mut Transaction<'_, Postgres>, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(order_id)
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// The order's payment, if it has one.
pub async fn for_order(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> sqlx::Result<Option<Payment>> {
    sqlx::query_as(
        "SELECT id, order_id, amount_cents, currency, status, created_at, user_id, provider_ref
         FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Records a payment.
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    payment: &NewPayment,
) -> sqlx::Result<Payment> {
    sqlx::query_as(
        "INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status, provider_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, order_id, amount_cents, currency, status, created_at, user_id, provider_ref",
    )
    .bind(Uuid::now_v7())
    .bind(payment.order_id)
    .bind(payment.user_id)
    .bind(payment.amount_cents)
    .bind(&payment.currency)
    .bind(payment.status)
    .bind(&payment.provider_ref)
    .fetch_one(&mut **tx)
    .await
}

/// Marks a captured payment refunded.
pub async fn mark_refunded(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'refunded', updated_at = now()
         WHERE id = $1 AND status = 'succeeded'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// The newest `limit` payments: `user_id`'s, or everyone's for `None`.
pub async fn list(pool: &PgPool, user_id: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<Payment>> {
    sqlx::query_as(
        "SELECT id, order_id, amount_cents, currency, status, created_at, user_id, provider_ref
         FROM payments WHERE $1::uuid IS NULL OR user_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
