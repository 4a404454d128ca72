//! The inventory service's part of the order saga.
//!
//! | on | does | emits |
//! |---|---|---|
//! | `order.created` | reserves every line, or none | `inventory.reserved` / `inventory.rejected` |
//! | `payment.succeeded` | marks the reservation sold | |
//! | `payment.declined`, `order.cancelled` | gives the held stock back (and remembers the cancellation, should the order's `order.created` come later) | `inventory.released` |
//!
//! Each effect is written in the consumer's transaction, with the event's inbox mark and
//! the events it emits (through the outbox), so a redelivered event changes nothing and
//! an emitted event exists exactly when its effect does. Events that arrive together
//! share a transaction (`event_bus::inbox::Effect`).

use contracts::events::{
    InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, OrderRef, types,
};
use event_bus::{Effect, Envelope, HandlerError, outbox};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{Postgres, Transaction};

use crate::SERVICE;
use crate::reservations::{self, Reserved};

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[
    types::ORDER_CREATED,
    types::PAYMENT_SUCCEEDED,
    types::PAYMENT_DECLINED,
    types::ORDER_CANCELLED,
];

async fn emit(
    tx: &mut Transaction<'_, Postgres>,
    stream: &str,
    cause: &Envelope,
    event_type: &str,
    payload: &impl Serialize,
) -> Result<(), HandlerError> {
    outbox::enqueue_caused_by(tx, stream, cause, SERVICE, event_type, payload).await
}

/// The service's saga: emits onto `stream` (this service's stream).
pub struct Saga {
    pub stream: String,
}

impl Effect for Saga {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(apply(tx, &self.stream, event))
    }
}

/// Applies one event in `tx`.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    stream: &str,
    event: &Envelope,
) -> Result<(), HandlerError> {
    match event.event_type.as_str() {
        types::ORDER_CREATED => {
            let order: OrderCreated = event.decode().map_err(HandlerError::poison)?;
            let lines: Vec<_> = order
                .items
                .iter()
                .map(|l| (l.product_id, l.quantity))
                .collect();
            match reservations::reserve(tx, order.order_id, &lines)
                .await
                .map_err(HandlerError::retry)?
            {
                Reserved::All => {
                    let reserved = InventoryReserved {
                        order_id: order.order_id,
                        user_id: order.user_id,
                        total_cents: order.total_cents,
                        currency: order.currency,
                        payment_method: order.payment_method,
                    };
                    emit(tx, stream, event, types::INVENTORY_RESERVED, &reserved).await?;
                }
                Reserved::OutOfStock => {
                    let rejected = InventoryRejected {
                        order_id: order.order_id,
                        reason: "out_of_stock".into(),
                    };
                    emit(tx, stream, event, types::INVENTORY_REJECTED, &rejected).await?;
                }
                Reserved::AlreadyDone | Reserved::Cancelled => {}
            }
        }
        types::PAYMENT_SUCCEEDED => {
            let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
            reservations::commit(tx, order.order_id)
                .await
                .map_err(HandlerError::retry)?;
        }
        types::PAYMENT_DECLINED | types::ORDER_CANCELLED => {
            let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
            if event.event_type == types::ORDER_CANCELLED {
                reservations::mark_cancelled(tx, order.order_id)
                    .await
                    .map_err(HandlerError::retry)?;
            }
            if reservations::release(tx, order.order_id)
                .await
                .map_err(HandlerError::retry)?
            {
                emit(
                    tx,
                    stream,
                    event,
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
    Ok(())
}
