//! The inventory service's part of the order saga.
//!
//! | on | does | emits |
//! |---|---|---|
//! | `order.created` | reserves every line, or none | `inventory.reserved` / `inventory.rejected` |
//! | `payment.succeeded` | marks the reservation sold | |
//! | `payment.declined`, `order.cancelled` | gives the held stock back (and remembers the cancellation, should the order's `order.created` come later) | `inventory.released` |
//!
//! Each handler runs in one transaction with its inbox mark and the events it emits
//! (through the outbox), so a redelivered event changes nothing and an emitted event
//! exists exactly when its effect does.

use contracts::events::{
    InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, OrderRef, types,
};
use event_bus::{Envelope, HandlerError, inbox, outbox};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::SERVICE;
use crate::reservations::{self, Reserved};

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[
    types::ORDER_CREATED,
    types::PAYMENT_SUCCEEDED,
    types::PAYMENT_DECLINED,
    types::ORDER_CANCELLED,
];

/// Events about one order are handled in stream order.
pub fn order_key(event: &Envelope) -> Option<String> {
    event
        .data
        .get("order_id")
        .and_then(|id| id.as_str())
        .map(str::to_owned)
}

fn retry(error: impl Into<anyhow::Error>) -> HandlerError {
    HandlerError::Retry(error.into())
}

fn poison(error: impl Into<anyhow::Error>) -> HandlerError {
    HandlerError::Poison(error.into())
}

async fn emit(
    tx: &mut Transaction<'_, Postgres>,
    stream: &str,
    cause: &Envelope,
    event_type: &str,
    payload: &impl Serialize,
) -> Result<(), HandlerError> {
    let event = Envelope::new(event_type, SERVICE, payload)
        .map_err(poison)?
        .caused_by(cause);
    outbox::enqueue(tx, stream, &event).await.map_err(retry)
}

/// Applies one event, exactly once; emits onto `stream` (this service's stream).
pub async fn handle(pool: PgPool, stream: String, event: Envelope) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::begin(&pool, SERVICE, event.id)
        .await
        .map_err(retry)?
    else {
        return Ok(());
    };
    match event.event_type.as_str() {
        types::ORDER_CREATED => {
            let order: OrderCreated = event.decode().map_err(poison)?;
            let lines: Vec<_> = order
                .items
                .iter()
                .map(|l| (l.product_id, l.quantity))
                .collect();
            match reservations::reserve(&mut tx, order.order_id, &lines)
                .await
                .map_err(retry)?
            {
                Reserved::All => {
                    let reserved = InventoryReserved {
                        order_id: order.order_id,
                        user_id: order.user_id,
                        total_cents: order.total_cents,
                        currency: order.currency,
                        payment_method: order.payment_method,
                    };
                    emit(
                        &mut tx,
                        &stream,
                        &event,
                        types::INVENTORY_RESERVED,
                        &reserved,
                    )
                    .await?;
                }
                Reserved::OutOfStock => {
                    let rejected = InventoryRejected {
                        order_id: order.order_id,
                        reason: "out_of_stock".into(),
                    };
                    emit(
                        &mut tx,
                        &stream,
                        &event,
                        types::INVENTORY_REJECTED,
                        &rejected,
                    )
                    .await?;
                }
                Reserved::AlreadyDone | Reserved::Cancelled => {}
            }
        }
        types::PAYMENT_SUCCEEDED => {
            let order: OrderRef = event.decode().map_err(poison)?;
            reservations::commit(&mut tx, order.order_id)
                .await
                .map_err(retry)?;
        }
        types::PAYMENT_DECLINED | types::ORDER_CANCELLED => {
            let order: OrderRef = event.decode().map_err(poison)?;
            if event.event_type == types::ORDER_CANCELLED {
                reservations::mark_cancelled(&mut tx, order.order_id)
                    .await
                    .map_err(retry)?;
            }
            if reservations::release(&mut tx, order.order_id)
                .await
                .map_err(retry)?
            {
                emit(
                    &mut tx,
                    &stream,
                    &event,
                    types::INVENTORY_RELEASED,
                    &InventoryReleased {
                        order_id: order.order_id,
                    },
                )
                .await?;
            }
        }
        _ => {}
    }
    tx.commit().await.map_err(retry)
}
