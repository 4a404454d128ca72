//! The payment service's part of the order saga.
//!
//! | on | does | emits |
//! |---|---|---|
//! | `inventory.reserved` | charges the order's total, once | `payment.succeeded` / `payment.declined` |
//! | `order.cancelled` | refunds a capture; remembers the cancellation so a later `inventory.reserved` charges nothing | `payment.refunded` |
//!
//! Each handler runs in one transaction with its inbox mark and the event it emits, and
//! first takes the order's advisory lock: a charge and a cancellation of one order
//! never interleave, on one replica or several. The provider is called inside that
//! transaction; if the process dies after charging and before committing, the retry
//! charges again with the same idempotency key (the order id), which a provider
//! answers with the same charge, so an order is charged at most once.

use std::sync::Arc;

use contracts::events::{InventoryReserved, OrderRef, PaymentOutcome, types};
use event_bus::saga::{cancelled_among, remember_cancelled};
use event_bus::{Envelope, HandlerError, OrRetry, inbox, outbox};
use sqlx::PgPool;

use crate::payments::{self, NewPayment, Payment, Status};
use crate::provider::{ChargeOutcome, ChargeRequest, GuardedProvider};
use crate::state::SERVICE;

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[types::INVENTORY_RESERVED, types::ORDER_CANCELLED];

/// What the handlers need.
pub struct Saga {
    pub pool: PgPool,
    pub provider: GuardedProvider,
    /// This service's stream.
    pub stream: event_bus::Stream,
    /// Commits what wrote to the outbox, waking the relay.
    pub wake: event_bus::Wake,
}

fn outcome(payment: &Payment) -> PaymentOutcome {
    PaymentOutcome {
        order_id: payment.order_id,
        payment_id: payment.id,
        user_id: payment.user_id,
        amount_cents: payment.amount_cents,
        currency: payment.currency.clone(),
    }
}

/// Applies one event, exactly once.
pub async fn handle(saga: Arc<Saga>, event: Envelope) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::open(&saga.pool, SERVICE, &event).await? else {
        return Ok(());
    };
    let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
    payments::lock_order(&mut tx, order.order_id)
        .await
        .or_retry(|| format!("locking order {}", order.order_id))?;
    let existing = payments::for_order(&mut tx, order.order_id)
        .await
        .or_retry(|| format!("reading the payment of order {}", order.order_id))?;
    match event.event_type.as_str() {
        types::INVENTORY_RESERVED => {
            let cancelled = cancelled_among(&mut tx, &[order.order_id])
                .await?
                .contains(&order.order_id);
            if existing.is_none() && !cancelled {
                let reserved: InventoryReserved = event.decode().map_err(HandlerError::poison)?;
                let request = ChargeRequest {
                    idempotency_key: reserved.order_id.to_string(),
                    amount_cents: reserved.total_cents,
                    currency: reserved.currency.clone(),
                    payment_method: reserved.payment_method.clone(),
                };
                let (status, reference, event_type) = match saga
                    .provider
                    .charge(&request)
                    .await
                    .or_retry(|| format!("charging order {}", order.order_id))?
                {
                    ChargeOutcome::Approved { reference } => {
                        (Status::Succeeded, reference, types::PAYMENT_SUCCEEDED)
                    }
                    ChargeOutcome::Declined { reference } => {
                        (Status::Declined, reference, types::PAYMENT_DECLINED)
                    }
                };
                let payment = payments::insert(
                    &mut tx,
                    &NewPayment {
                        order_id: reserved.order_id,
                        user_id: reserved.user_id,
                        amount_cents: reserved.total_cents,
                        currency: reserved.currency,
                        status,
                        provider_ref: reference,
                    },
                )
                .await
                .or_retry(|| format!("recording the payment of order {}", order.order_id))?;
                outbox::enqueue_caused_by(
                    &mut tx,
                    &saga.stream,
                    &event,
                    SERVICE,
                    event_type,
                    &outcome(&payment),
                )?;
                tracing::info!(order_id = %payment.order_id, status = status.as_str(), "payment made");
            }
        }
        types::ORDER_CANCELLED => {
            remember_cancelled(&mut tx, &[order.order_id]).await?;
            if let Some(payment) = existing.filter(|p| p.status == Status::Succeeded) {
                saga.provider
                    .refund(&payment.provider_ref)
                    .await
                    .or_retry(|| format!("refunding order {}", order.order_id))?;
                payments::mark_refunded(&mut tx, payment.id)
                    .await
                    .or_retry(|| format!("recording the refund of order {}", order.order_id))?;
                outbox::enqueue_caused_by(
                    &mut tx,
                    &saga.stream,
                    &event,
                    SERVICE,
                    types::PAYMENT_REFUNDED,
                    &outcome(&payment),
                )?;
                tracing::info!(order_id = %payment.order_id, "payment refunded");
            }
        }
        _ => {}
    }
    saga.wake
        .commit(tx)
        .await
        .or_retry(|| format!("committing what was done for order {}", order.order_id))
}
