//! Orders: their shape and their storage; a new one's checks are [`request`].

mod request;

pub use request::{
    Item, LineInput, MAX_LINES, MAX_QUANTITY, OrderInput, OrderRequest, PAYMENT_METHODS, Priced,
};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Why an order was cancelled.
pub mod reasons {
    pub const OUT_OF_STOCK: &str = "out_of_stock";
    pub const PAYMENT_DECLINED: &str = "payment_declined";
    pub const CANCELLED_BY_USER: &str = "cancelled_by_user";
}

/// Where an order stands: `pending` until the saga confirms or cancels it (or its user
/// cancels it); stored as the text the API shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Status {
    Pending,
    Confirmed,
    Cancelled,
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: Status,
    pub items: Vec<Item>,
    pub total_cents: i64,
    pub currency: String,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub payment_method: String,
}

/// A client's idempotency key and the digest of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub digest: Vec<u8>,
}

/// What [`insert`] did.
#[derive(Debug)]
pub enum Inserted {
    /// A new order, in `tx` (not yet committed).
    New(Order),
    /// The key was used before by this user: `tx` changed nothing.
    Existing(KeyUse),
}

/// An earlier use of an idempotency key.
#[derive(Debug)]
pub struct KeyUse {
    pub order_id: Uuid,
    pub same_request: bool,
}

struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: Status,
    cancel_reason: Option<String>,
    total_cents: i64,
    currency: String,
    payment_method: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn with_items(self, items: Vec<Item>) -> Order {
        Order {
            id: self.id,
            user_id: self.user_id,
            status: self.status,
            items,
            total_cents: self.total_cents,
            currency: self.currency,
            cancel_reason: self.cancel_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
            payment_method: self.payment_method,
        }
    }
}

/// The earlier use of `key` by `user_id`, if any.
pub async fn find_key<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    key: &IdempotencyKey,
) -> sqlx::Result<Option<KeyUse>> {
    let row = sqlx::query!(
        "SELECT id, request_digest FROM orders WHERE user_id = $1 AND idempotency_key = $2",
        user_id,
        &key.key
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| KeyUse {
        order_id: row.id,
        same_request: row.request_digest.as_ref() == Some(&key.digest),
    }))
}

/// Stores a new `pending` order in `tx`, unless `key` was used before by this user
/// (then nothing is written). Concurrent requests with one key serialise on the
/// unique index: one inserts, the others wait for it and find its order.
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    order: &Priced,
    key: Option<&IdempotencyKey>,
) -> sqlx::Result<Inserted> {
    let id = Uuid::now_v7();
    // The order and its lines in one statement: the lines are written only when the
    // order row is.
    let row = sqlx::query_as!(
        OrderRow,
        r#"WITH stored AS (
             INSERT INTO orders (id, user_id, status, total_cents, currency, payment_method,
                                 idempotency_key, request_digest)
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id, user_id, status, cancel_reason, total_cents, currency,
                       payment_method, created_at, updated_at
         ), lines AS (
             INSERT INTO order_items (order_id, line, product_id, quantity, unit_price_cents)
             SELECT stored.id, (l.n - 1)::integer, l.product_id, l.quantity, l.unit_price_cents
             FROM stored, unnest($8::uuid[], $9::bigint[], $10::bigint[])
                 WITH ORDINALITY AS l(product_id, quantity, unit_price_cents, n)
         )
         SELECT id AS "id!", user_id AS "user_id!", status AS "status!: Status",
                cancel_reason, total_cents AS "total_cents!", currency AS "currency!",
                payment_method AS "payment_method!", created_at AS "created_at!",
                updated_at AS "updated_at!"
           FROM stored"#,
        id,
        user_id,
        order.total_cents,
        &order.currency,
        &order.payment_method,
        key.map(|k| &k.key),
        key.map(|k| &k.digest),
        &order.items.iter().map(|i| i.product_id).collect::<Vec<_>>(),
        &order.items.iter().map(|i| i.quantity).collect::<Vec<_>>(),
        &order
            .items
            .iter()
            .map(|i| i.unit_price_cents)
            .collect::<Vec<_>>(),
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        // Only a keyed insert can conflict; the winner has committed by now.
        let used = match key {
            Some(key) => find_key(&mut **tx, user_id, key).await?,
            None => None,
        };
        return used.map(Inserted::Existing).ok_or(sqlx::Error::RowNotFound);
    };
    Ok(Inserted::New(row.with_items(order.items.clone())))
}

async fn items_of<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Item)>> {
    let rows = sqlx::query!(
        "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
         WHERE order_id = ANY($1) ORDER BY order_id, line",
        ids
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let item = Item {
                product_id: row.product_id,
                quantity: row.quantity,
                unit_price_cents: row.unit_price_cents,
            };
            (row.order_id, item)
        })
        .collect())
}

fn assemble(rows: Vec<OrderRow>, items: Vec<(Uuid, Item)>) -> Vec<Order> {
    let mut by_order: HashMap<Uuid, Vec<Item>> = HashMap::new();
    for (order_id, item) in items {
        by_order.entry(order_id).or_default().push(item);
    }
    rows.into_iter()
        .map(|row| {
            let items = by_order.remove(&row.id).unwrap_or_default();
            row.with_items(items)
        })
        .collect()
}

/// The order `id`.
pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Order>> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, user_id, status AS "status: Status", cancel_reason, total_cents, currency,
                  payment_method, created_at, updated_at
         FROM orders WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let items = items_of(pool, &[id]).await?;
    Ok(assemble(vec![row], items).pop())
}

/// The newest `limit` orders: `user_id`'s, or everyone's for `None`.
pub async fn list(pool: &PgPool, user_id: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<Order>> {
    let rows = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, user_id, status AS "status: Status", cancel_reason, total_cents, currency,
                  payment_method, created_at, updated_at
         FROM orders WHERE $1::uuid IS NULL OR user_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"#,
        user_id,
        limit
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items = items_of(pool, &ids).await?;
    Ok(assemble(rows, items))
}

/// What the saga tells of an order it moved: confirmed, or cancelled with its reason.
#[derive(Debug, Clone)]
pub struct Moved {
    pub id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
    pub currency: String,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Moves each order of `moves` that is `pending` to `confirmed` (a reason of `None`)
/// or to `cancelled` with its reason; returns those that moved. One statement for any
/// number, without the orders' lines, which the saga's events do not carry. An order
/// named twice moves once, by its first move.
pub async fn move_pending(
    tx: &mut Transaction<'_, Postgres>,
    moves: &[(Uuid, Option<&str>)],
) -> sqlx::Result<Vec<Moved>> {
    let ids: Vec<Uuid> = moves.iter().map(|(id, _)| *id).collect();
    let reasons: Vec<Option<&str>> = moves.iter().map(|(_, reason)| *reason).collect();
    sqlx::query_as!(
        Moved,
        "UPDATE orders o
         SET status = CASE WHEN m.reason IS NULL THEN 'confirmed' ELSE 'cancelled' END,
             cancel_reason = m.reason, updated_at = now()
         FROM (SELECT DISTINCT ON (id) id, reason
               FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS m(id, reason, n)
               ORDER BY id, n) AS m
         WHERE o.id = m.id AND o.status = 'pending'
         RETURNING o.id, o.user_id, o.total_cents, o.currency, o.cancel_reason, o.created_at",
        &ids,
        &reasons as &[Option<&str>]
    )
    .fetch_all(&mut **tx)
    .await
}

/// Moves the order to `cancelled` with `reason` from any state in `from`; returns it if
/// it moved.
pub async fn cancel(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    reason: &str,
    from: &[Status],
) -> sqlx::Result<Option<Order>> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"UPDATE orders SET status = 'cancelled', cancel_reason = $2, updated_at = now()
         WHERE id = $1 AND status = ANY($3)
         RETURNING id, user_id, status AS "status: Status", cancel_reason, total_cents,
                   currency, payment_method, created_at, updated_at"#,
        id,
        reason,
        from as &[Status]
    )
    .fetch_optional(&mut **tx)
    .await?;
    with_items(tx, row).await
}

async fn with_items(
    tx: &mut Transaction<'_, Postgres>,
    row: Option<OrderRow>,
) -> sqlx::Result<Option<Order>> {
    let Some(row) = row else { return Ok(None) };
    let items = items_of(&mut **tx, &[row.id]).await?;
    Ok(assemble(vec![row], items).pop())
}

#[cfg(test)]
mod tests;
