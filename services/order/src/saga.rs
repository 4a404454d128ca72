//! The order service's part of the order saga.
//!
//! | on | does | emits |
//! |---|---|---|
//! | `payment.succeeded` | `pending` → `confirmed` | `order.confirmed` |
//! | `inventory.rejected` | `pending` → `cancelled` (`out_of_stock`) | `order.cancelled` |
//! | `payment.declined` | `pending` → `cancelled` (`payment_declined`) | `order.cancelled` |
//!
//! Each move is a conditional update from `pending`, so an order its user cancelled
//! meanwhile stays cancelled (the payment service refunds a capture when it sees that
//! order's `order.cancelled`), and a redelivered event finds nothing to move. The
//! move, the inbox mark and the emitted event commit in one transaction, which events
//! arriving together share (`event_bus::inbox::Effect`).

use contracts::events::{OrderCancelled, OrderConfirmed, OrderRef, types};
use event_bus::saga::{Emitter, Participant};
use event_bus::{Effect, Envelope, HandlerError, OrRetry};
use sqlx::{Postgres, Transaction};

use crate::orders::{self, Order, reasons};
use crate::state::SERVICE;

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[
    types::INVENTORY_REJECTED,
    types::PAYMENT_SUCCEEDED,
    types::PAYMENT_DECLINED,
];

/// `order.cancelled` for `order`.
pub fn cancelled(order: &Order) -> OrderCancelled {
    OrderCancelled {
        order_id: order.id,
        user_id: order.user_id,
        reason: order.cancel_reason.clone().unwrap_or_default(),
        total_cents: order.total_cents,
        currency: order.currency.clone(),
    }
}

/// Moves the event's order, if it can move, and emits what it became; in `tx`, with
/// the event's inbox mark.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    event: &Envelope,
    emitter: &Emitter,
) -> Result<(), HandlerError> {
    let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
    let cancel_reason = match event.event_type.as_str() {
        types::INVENTORY_REJECTED => Some(reasons::OUT_OF_STOCK),
        types::PAYMENT_DECLINED => Some(reasons::PAYMENT_DECLINED),
        _ => None,
    };
    if event.event_type == types::PAYMENT_SUCCEEDED {
        if let Some(order) = orders::confirm(tx, order.order_id)
            .await
            .or_retry(|| format!("confirming order {}", order.order_id))?
        {
            let confirmed = OrderConfirmed {
                order_id: order.id,
                user_id: order.user_id,
                total_cents: order.total_cents,
                currency: order.currency.clone(),
            };
            emitter
                .emit(tx, event, types::ORDER_CONFIRMED, &confirmed)
                .await?;
            tracing::info!(order_id = %order.id, "order confirmed");
        }
    } else if let Some(reason) = cancel_reason
        && let Some(order) = orders::cancel(tx, order.order_id, reason, &[orders::Status::Pending])
            .await
            .or_retry(|| format!("cancelling order {}", order.order_id))?
    {
        emitter
            .emit(tx, event, types::ORDER_CANCELLED, &cancelled(&order))
            .await?;
        tracing::info!(order_id = %order.id, reason, "order cancelled");
    }
    Ok(())
}

/// The service's saga, emitting onto `stream` (this service's stream).
pub fn participant(stream: event_bus::Stream) -> impl Effect {
    Participant::new(Emitter::new(SERVICE, stream), |tx, event, emitter| {
        Box::pin(apply(tx, event, emitter))
    })
}
