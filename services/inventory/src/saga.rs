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
use event_bus::saga::{self, Emitter, Participant};
use event_bus::{Effect, Envelope, HandlerError, OrRetry};
use sqlx::{Postgres, Transaction};

use crate::reservations::{self, Reserved};
use crate::state::SERVICE;

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[
    types::ORDER_CREATED,
    types::PAYMENT_SUCCEEDED,
    types::PAYMENT_DECLINED,
    types::ORDER_CANCELLED,
];

/// The service's saga, emitting onto `stream` (this service's stream).
pub fn participant(stream: event_bus::Stream) -> impl Effect {
    Participant::new(Emitter::new(SERVICE, stream), |tx, event, emitter| {
        Box::pin(apply(tx, event, emitter))
    })
}

/// Applies one event in `tx`.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    event: &Envelope,
    emitter: &Emitter,
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
                .or_retry(|| format!("reserving the stock of order {}", order.order_id))?
            {
                Reserved::All => {
                    let reserved = InventoryReserved {
                        order_id: order.order_id,
                        user_id: order.user_id,
                        total_cents: order.total_cents,
                        currency: order.currency,
                        payment_method: order.payment_method,
                    };
                    emitter
                        .emit(tx, event, types::INVENTORY_RESERVED, &reserved)
                        .await?;
                }
                Reserved::OutOfStock => {
                    let rejected = InventoryRejected {
                        order_id: order.order_id,
                        reason: "out_of_stock".into(),
                    };
                    emitter
                        .emit(tx, event, types::INVENTORY_REJECTED, &rejected)
                        .await?;
                }
                Reserved::AlreadyDone | Reserved::Cancelled => {}
            }
        }
        types::PAYMENT_SUCCEEDED => {
            let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
            reservations::commit(tx, order.order_id)
                .await
                .or_retry(|| format!("committing the stock of order {}", order.order_id))?;
        }
        types::PAYMENT_DECLINED | types::ORDER_CANCELLED => {
            let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
            if event.event_type == types::ORDER_CANCELLED {
                saga::remember_cancelled(tx, order.order_id).await?;
            }
            if reservations::release(tx, order.order_id)
                .await
                .or_retry(|| format!("releasing the stock of order {}", order.order_id))?
            {
                emitter
                    .emit(
                        tx,
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
