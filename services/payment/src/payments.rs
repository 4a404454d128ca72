//! Payments: one per order, and their storage.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub status: Status,
    pub provider_ref: String,
}

impl NewPayment {
    /// The payment as [`insert_all`] records it.
    pub fn recorded(&self) -> Payment {
        Payment {
            id: self.id,
            order_id: self.order_id,
            amount_cents: self.amount_cents,
            currency: self.currency.clone(),
            status: self.status,
            created_at: Utc::now(),
            user_id: self.user_id,
            provider_ref: self.provider_ref.clone(),
        }
    }
}

/// Which of the orders `ids` have a payment or were cancelled: those a charge must
/// not be made for. One read, outside any transaction: a cancellation it misses is
/// seen by the transaction that records the charge.
pub async fn paid_or_cancelled(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
    let settled: Vec<Uuid> = sqlx::query_scalar!(
        r#"SELECT order_id AS "order_id!" FROM payments WHERE order_id = ANY($1)
           UNION SELECT order_id FROM cancelled_orders WHERE order_id = ANY($1)"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    Ok(settled.into_iter().collect())
}

/// Serialises everything done about the orders `ids`, across this service's replicas,
/// until `tx` ends: a charge and a cancellation of one order never interleave. The
/// locks are taken in one order (of their keys), so two batches never deadlock.
pub async fn lock_orders(tx: &mut Transaction<'_, Postgres>, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(key)
         FROM (SELECT DISTINCT hashtextextended(id::text, 0) AS key
               FROM unnest($1::uuid[]) AS id ORDER BY key) AS keys",
        ids
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// What is recorded about the orders `ids`: their payments, and which of them were
/// cancelled. One statement; run it after [`lock_orders`] (a statement of its own, so
/// this one's snapshot sees everything committed before the locks were granted).
pub async fn recorded_for(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> sqlx::Result<(Vec<Payment>, HashSet<Uuid>)> {
    // The payment's columns come from an outer join: each is there exactly when the
    // order has a payment (they are all NOT NULL in the table).
    let rows = sqlx::query!(
        r#"SELECT o.id AS "order_id!", c.order_id IS NOT NULL AS "cancelled!", p.id AS "id?",
                  p.amount_cents AS "amount_cents?", p.currency AS "currency?",
                  p.status AS "status?: Status", p.created_at AS "created_at?",
                  p.user_id AS "user_id?", p.provider_ref AS "provider_ref?"
             FROM (SELECT DISTINCT unnest($1::uuid[]) AS id) AS o
             LEFT JOIN payments p ON p.order_id = o.id
             LEFT JOIN cancelled_orders c ON c.order_id = o.id
            WHERE p.id IS NOT NULL OR c.order_id IS NOT NULL"#,
        ids
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut payments = Vec::new();
    let mut cancelled = HashSet::new();
    for row in rows {
        if row.cancelled {
            cancelled.insert(row.order_id);
        }
        let payment = || {
            Some(Payment {
                id: row.id?,
                order_id: row.order_id,
                amount_cents: row.amount_cents?,
                currency: row.currency?,
                status: row.status?,
                created_at: row.created_at?,
                user_id: row.user_id?,
                provider_ref: row.provider_ref?,
            })
        };
        payments.extend(payment());
    }
    Ok((payments, cancelled))
}

/// Records `payments`, in one statement.
pub async fn insert_all(
    tx: &mut Transaction<'_, Postgres>,
    payments: &[&NewPayment],
) -> sqlx::Result<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&NewPayment) -> Uuid| payments.iter().map(|p| f(p)).collect::<Vec<_>>();
    let text = |f: fn(&NewPayment) -> &str| payments.iter().map(|p| f(p)).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status, provider_ref)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                              $6::text[], $7::text[])",
        &column(|p| p.id),
        &column(|p| p.order_id),
        &column(|p| p.user_id),
        &payments.iter().map(|p| p.amount_cents).collect::<Vec<_>>(),
        &text(|p| p.currency.as_str()) as &[&str],
        &text(|p| p.status.as_str()) as &[&str],
        &text(|p| p.provider_ref.as_str()) as &[&str],
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// Marks the captured payments `ids` refunded, in one statement.
pub async fn mark_refunded(tx: &mut Transaction<'_, Postgres>, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE payments SET status = 'refunded', updated_at = now()
         WHERE id = ANY($1) AND status = 'succeeded'",
        ids
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// The newest `limit` payments: `user_id`'s, or everyone's for `None`.
pub async fn list(pool: &PgPool, user_id: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<Payment>> {
    sqlx::query_as!(
        Payment,
        r#"SELECT id, order_id, amount_cents, currency, status AS "status: Status", created_at,
                  user_id, provider_ref
         FROM payments WHERE $1::uuid IS NULL OR user_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"#,
        user_id,
        limit
    )
    .fetch_all(pool)
    .await
}
