//! Holding stock for an order: every line or none, and never more than there is.
//!
//! Each line is taken with one conditional `UPDATE … WHERE available >= quantity`, which
//! Postgres applies atomically under the row's lock: however many orders race for the
//! last units, at most `available` of them succeed and `available` never goes below
//! zero. Lines are taken in product-id order so two orders over the same products
//! cannot deadlock, and in one transaction, so a line that fails rolls back the lines
//! before it.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// What happened to an order's reservation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Every line is held.
    All,
    /// Some line had too little stock (or no product); nothing is held.
    OutOfStock,
    /// The order was already handled (a redelivered event).
    AlreadyDone,
    /// The order was cancelled before its stock was asked for: nothing is held.
    Cancelled,
}

/// Reserves every `(product_id, quantity)` line for `order_id` within `tx`, or none.
/// On `OutOfStock` nothing is changed (the lines taken so far are undone through a
/// savepoint), so the caller still commits what else it wrote: the inbox mark and the
/// rejection event.
pub async fn reserve(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    lines: &[(Uuid, i64)],
) -> sqlx::Result<Reserved> {
    let (reserved, cancelled): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM reservations WHERE order_id = $1),
                EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = $1)",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    if reserved {
        return Ok(Reserved::AlreadyDone);
    }
    if cancelled {
        return Ok(Reserved::Cancelled);
    }
    let mut lines = lines.to_vec();
    lines.sort_by_key(|(product_id, _)| *product_id);

    if lines.iter().any(|(_, quantity)| *quantity <= 0) {
        return Ok(Reserved::OutOfStock);
    }
    // One line changes nothing when it fails; several need a savepoint to undo the
    // lines taken before the one that failed.
    let undoable = lines.len() > 1;
    if undoable {
        sqlx::query("SAVEPOINT reserve_lines")
            .execute(&mut **tx)
            .await?;
    }
    for (product_id, quantity) in &lines {
        // Take the stock and record the hold in one statement: the row is locked
        // from here to commit, so this comes as late as it can.
        let taken = sqlx::query(
            "WITH taken AS (
                 UPDATE products SET available = available - $2, updated_at = now()
                 WHERE id = $1 AND available >= $2
                 RETURNING id
             )
             INSERT INTO reservations (order_id, product_id, quantity, status)
             SELECT $3, id, $2, 'reserved' FROM taken",
        )
        .bind(product_id)
        .bind(quantity)
        .bind(order_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            if undoable {
                sqlx::query("ROLLBACK TO SAVEPOINT reserve_lines")
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(Reserved::OutOfStock);
        }
    }
    if undoable {
        sqlx::query("RELEASE SAVEPOINT reserve_lines")
            .execute(&mut **tx)
            .await?;
    }
    Ok(Reserved::All)
}

/// Gives the order's held stock back. Returns whether anything was held.
pub async fn release(tx: &mut Transaction<'_, Postgres>, order_id: Uuid) -> sqlx::Result<bool> {
    let released: Vec<(Uuid, i64)> = sqlx::query_as(
        "UPDATE reservations SET status = 'released', updated_at = now()
         WHERE order_id = $1 AND status IN ('reserved', 'committed')
         RETURNING product_id, quantity",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    for (product_id, quantity) in &released {
        sqlx::query(
            "UPDATE products SET available = available + $2, updated_at = now() WHERE id = $1",
        )
        .bind(product_id)
        .bind(quantity)
        .execute(&mut **tx)
        .await?;
    }
    Ok(!released.is_empty())
}

/// Marks the order's held stock as sold (its payment succeeded).
pub async fn commit(tx: &mut Transaction<'_, Postgres>, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE reservations SET status = 'committed', updated_at = now()
         WHERE order_id = $1 AND status = 'reserved'",
    )
    .bind(order_id)
    .execute(&mut **tx)
    .await
    .map(drop)
}
