//! Holding stock for an order: every line or none, and never more than there is.
//!
//! Each line is taken with one conditional `UPDATE … WHERE available >= quantity`, which
//! Postgres applies atomically under the row's lock: however many orders race for the
//! last units, at most `available` of them succeed and `available` never goes below
//! zero. Lines are taken in product-id order so two orders over the same products
//! cannot deadlock, and in one transaction, so a line that fails rolls back the lines
//! before it. Orders that arrive together are reserved with one statement
//! ([`reserve_all`]) when the stock covers all of them.

use std::collections::HashSet;

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
    let done = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM reservations WHERE order_id = $1) AS "reserved!",
                  EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = $1) AS "cancelled!""#,
        order_id
    )
    .fetch_one(&mut **tx)
    .await?;
    if done.reserved {
        return Ok(Reserved::AlreadyDone);
    }
    if done.cancelled {
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
        sqlx::query!("SAVEPOINT reserve_lines")
            .execute(&mut **tx)
            .await?;
    }
    for (product_id, quantity) in &lines {
        // Take the stock and record the hold in one statement: the row is locked
        // from here to commit, so this comes as late as it can.
        let taken = sqlx::query!(
            "WITH taken AS (
                 UPDATE products SET available = available - $2, updated_at = now()
                 WHERE id = $1 AND available >= $2
                 RETURNING id
             )
             INSERT INTO reservations (order_id, product_id, quantity, status)
             SELECT $3, id, $2, 'reserved' FROM taken",
            product_id,
            quantity,
            order_id
        )
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            if undoable {
                sqlx::query!("ROLLBACK TO SAVEPOINT reserve_lines")
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(Reserved::OutOfStock);
        }
    }
    if undoable {
        sqlx::query!("RELEASE SAVEPOINT reserve_lines")
            .execute(&mut **tx)
            .await?;
    }
    Ok(Reserved::All)
}

/// Reserves every line of every order of `orders` within `tx`, in one statement, if
/// every product has stock for all of them together; returns whether it did. On `false`
/// some lines may be taken: the caller must roll `tx` back (and reserve the orders one
/// by one with [`reserve`], which can turn some away). The rows are locked in
/// product-id order, as [`reserve`] locks them. The orders must not be reserved or
/// cancelled already, and their quantities positive.
pub async fn reserve_all(
    tx: &mut Transaction<'_, Postgres>,
    orders: &[(Uuid, &[(Uuid, i64)])],
) -> sqlx::Result<bool> {
    let mut order_ids = Vec::new();
    let mut product_ids = Vec::new();
    let mut quantities = Vec::new();
    for (order_id, lines) in orders {
        for (product_id, quantity) in *lines {
            order_ids.push(*order_id);
            product_ids.push(*product_id);
            quantities.push(*quantity);
        }
    }
    sqlx::query_scalar!(
        r#"WITH line AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[])
                 AS l(order_id, product_id, quantity)
         ),
         wanted AS (
             SELECT product_id, sum(quantity)::int8 AS quantity FROM line GROUP BY product_id
         ),
         locked AS (
             SELECT id FROM products WHERE id IN (SELECT product_id FROM wanted)
             ORDER BY id FOR UPDATE
         ),
         taken AS (
             UPDATE products p SET available = p.available - w.quantity, updated_at = now()
             FROM wanted w
             WHERE p.id = w.product_id AND p.available >= w.quantity
               AND p.id IN (SELECT id FROM locked)
             RETURNING p.id
         ),
         enough AS (
             SELECT (SELECT count(*) FROM taken) = (SELECT count(*) FROM wanted) AS all_taken
         ),
         held AS (
             INSERT INTO reservations (order_id, product_id, quantity, status)
             SELECT order_id, product_id, quantity, 'reserved' FROM line
             WHERE (SELECT all_taken FROM enough)
             RETURNING 1
         )
         SELECT all_taken AND (SELECT count(*) FROM held) = cardinality($1::uuid[])
                AS "all_reserved!"
         FROM enough"#,
        &order_ids,
        &product_ids,
        &quantities
    )
    .fetch_one(&mut **tx)
    .await
}

/// Which of `orders` were reserved before, and which cancelled (one statement).
pub async fn reserved_or_cancelled(
    tx: &mut Transaction<'_, Postgres>,
    orders: &[Uuid],
) -> sqlx::Result<(HashSet<Uuid>, HashSet<Uuid>)> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT order_id AS "order_id!", true AS "reserved!"
             FROM reservations WHERE order_id = ANY($1)
           UNION ALL
           SELECT order_id, false FROM cancelled_orders WHERE order_id = ANY($1)"#,
        orders
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut reserved = HashSet::new();
    let mut cancelled = HashSet::new();
    for row in rows {
        if row.reserved {
            reserved.insert(row.order_id);
        } else {
            cancelled.insert(row.order_id);
        }
    }
    Ok((reserved, cancelled))
}

/// Gives the held stock of `orders` back, in one statement. Returns the orders that
/// had stock held.
pub async fn release(
    tx: &mut Transaction<'_, Postgres>,
    orders: &[Uuid],
) -> sqlx::Result<HashSet<Uuid>> {
    let released: Vec<Uuid> = sqlx::query_scalar!(
        "WITH released AS (
             UPDATE reservations SET status = 'released', updated_at = now()
             WHERE order_id = ANY($1) AND status IN ('reserved', 'committed')
             RETURNING order_id, product_id, quantity
         ),
         back AS (
             UPDATE products p SET available = p.available + r.quantity, updated_at = now()
             FROM (SELECT product_id, sum(quantity)::int8 AS quantity FROM released
                   GROUP BY product_id) r
             WHERE p.id = r.product_id
         )
         SELECT DISTINCT order_id FROM released",
        orders
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(released.into_iter().collect())
}

/// Marks the held stock of `orders` as sold (their payments succeeded), in one
/// statement.
pub async fn commit(tx: &mut Transaction<'_, Postgres>, orders: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE reservations SET status = 'committed', updated_at = now()
         WHERE order_id = ANY($1) AND status = 'reserved'",
        orders
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}
