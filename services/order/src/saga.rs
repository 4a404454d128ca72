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
//! order's `order.cancelled`), and a redelivered event finds nothing to move. The events
//! ready together move their orders in one statement, and the moves, the inbox marks
//! and the emitted events commit in one transaction (`event_bus::inbox::Effect`).

use std::collections::HashMap;

use contracts::events::{OrderCancelled, OrderConfirmed, OrderRef, types};
use event_bus::saga::{Emitter, Participant};
use event_bus::{Effect, Envelope, HandlerError, OrRetry, Tx};
use uuid::Uuid;

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

/// What `event` asks of its order: confirm it (`None`) or cancel it with a reason;
/// `Err` for an event of no move.
pub(crate) fn wanted(
    event: &Envelope,
) -> Result<Option<(Uuid, Option<&'static str>)>, HandlerError> {
    let reason = match event.event_type.as_str() {
        types::PAYMENT_SUCCEEDED => None,
        types::INVENTORY_REJECTED => Some(reasons::OUT_OF_STOCK),
        types::PAYMENT_DECLINED => Some(reasons::PAYMENT_DECLINED),
        _ => return Ok(None),
    };
    let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
    Ok(Some((order.order_id, reason)))
}

/// Moves the orders of `events` that can move, in one statement, and emits what each
/// became; in `tx`, with the events' inbox marks.
async fn apply(tx: &mut Tx, events: &[Envelope], emitter: &Emitter) -> Result<(), HandlerError> {
    let mut moves = Vec::with_capacity(events.len());
    let mut causes: HashMap<Uuid, &Envelope> = HashMap::with_capacity(events.len());
    for event in events {
        if let Some((order_id, reason)) = wanted(event)? {
            moves.push((order_id, reason));
            // An order named twice moves once, by its first event.
            causes.entry(order_id).or_insert(event);
        }
    }
    if moves.is_empty() {
        return Ok(());
    }
    let moved = orders::move_pending(tx, &moves)
        .await
        .or_retry(|| format!("moving {} orders", moves.len()))?;
    for order in moved {
        let cause = causes[&order.id];
        tx.after_commit(settled(&order));
        match order.cancel_reason {
            None => {
                let confirmed = OrderConfirmed {
                    order_id: order.id,
                    user_id: order.user_id,
                    total_cents: order.total_cents,
                    currency: order.currency,
                };
                emitter.emit(tx, cause, types::ORDER_CONFIRMED, &confirmed)?;
                tracing::info!(order_id = %order.id, "order confirmed");
            }
            Some(reason) => {
                tracing::info!(order_id = %order.id, reason, "order cancelled");
                let cancelled = OrderCancelled {
                    order_id: order.id,
                    user_id: order.user_id,
                    reason,
                    total_cents: order.total_cents,
                    currency: order.currency,
                };
                emitter.emit(tx, cause, types::ORDER_CANCELLED, &cancelled)?;
            }
        }
    }
    Ok(())
}

/// Records how long `order` took from its creation to where it settled, the saga's
/// end-to-end time (`orders_settled_seconds`, by outcome), which its alert holds to a
/// target: run once the move has committed, so an order is recorded once however often
/// its batch was tried.
fn settled(order: &orders::Moved) -> impl FnOnce() + Send + Sync + 'static {
    let outcome = if order.cancel_reason.is_none() {
        "confirmed"
    } else {
        "cancelled"
    };
    let created_at = order.created_at;
    move || {
        let took = (chrono::Utc::now() - created_at)
            .to_std()
            .unwrap_or_default();
        metrics::histogram!("orders_settled_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
    }
}

/// The service's saga, emitting onto `stream` (this service's stream).
pub fn participant(stream: event_bus::Stream) -> impl Effect {
    Participant::new(Emitter::new(SERVICE, stream), |tx, events, emitter| {
        Box::pin(apply(tx, events, emitter))
    })
}
