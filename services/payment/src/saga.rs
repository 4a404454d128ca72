//! The payment service's part of the order saga.
//!
//! | on | does | emits |
//! |---|---|---|
//! | `inventory.reserved` | charges the order's total, once | `payment.succeeded` / `payment.declined` |
//! | `order.cancelled` | refunds a capture; remembers the cancellation so a later `inventory.reserved` charges nothing | `payment.refunded` |
//!
//! The events ready together are one batch ([`event_bus::Effect`]). The card provider
//! is called first, outside any transaction ([`Effect::prepare`]): one read finds the
//! orders already paid or cancelled, and the others are charged, several at once, each
//! under its order id as the idempotency key. Then one transaction takes the batch's
//! orders' advisory locks (a charge and a cancellation of one order never interleave,
//! on one replica or several), records the charges and the cancellations, one
//! statement for each, with the inbox marks and the emitted events.
//!
//! A charge made and not recorded (the process died, the transaction failed) is made
//! again when the event is redelivered, with the same key, which the provider answers
//! with the same charge: an order is charged at most once. An order cancelled between
//! its charge and the recording is refunded at once and recorded as refunded.
//!
//! Refunds (a cancellation after a capture: rare) are still made inside the
//! transaction that records them, one provider call each.

use std::collections::{HashMap, HashSet};

use contracts::events::{InventoryReserved, OrderRef, PaymentOutcome, types};
use event_bus::saga::{Emitter, remember_cancelled};
use event_bus::{Answers, Effect, Envelope, HandlerError, OrRetry, Tx};
use futures::StreamExt;
use futures::future::BoxFuture;
use sqlx::PgPool;
use uuid::Uuid;

use crate::payments::{self, NewPayment, Payment, Status};
use crate::provider::{ChargeOutcome, ChargeRequest, GuardedProvider};
use crate::state::SERVICE;

/// The event types this service consumes.
pub const HANDLED: &[&str] = &[types::INVENTORY_RESERVED, types::ORDER_CANCELLED];

/// Most charges in flight to the provider at once, per batch.
const CHARGES_AT_ONCE: usize = 16;

/// The service's saga: charges and refunds, emitting onto the payment stream.
pub struct Saga {
    pool: PgPool,
    provider: GuardedProvider,
    emitter: Emitter,
    /// The provider's answers to the charges prepared, until a transaction records them.
    answers: Answers<ChargeOutcome>,
}

/// What an event asks of this service.
pub(crate) enum Step {
    Charge(InventoryReserved),
    Cancel(Uuid),
}

pub(crate) fn step(event: &Envelope) -> Result<Option<Step>, HandlerError> {
    Ok(match event.event_type.as_str() {
        types::INVENTORY_RESERVED => {
            Some(Step::Charge(event.decode().map_err(HandlerError::poison)?))
        }
        types::ORDER_CANCELLED => {
            let order: OrderRef = event.decode().map_err(HandlerError::poison)?;
            Some(Step::Cancel(order.order_id))
        }
        _ => None,
    })
}

fn order_of(step: &Step) -> Uuid {
    match step {
        Step::Charge(reserved) => reserved.order_id,
        Step::Cancel(order_id) => *order_id,
    }
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

fn charge_of(reserved: &InventoryReserved) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: reserved.order_id.to_string(),
        amount_cents: reserved.total_cents,
        currency: reserved.currency.clone(),
        payment_method: reserved.payment_method.clone(),
    }
}

impl Saga {
    pub fn new(pool: PgPool, provider: GuardedProvider, stream: event_bus::Stream) -> Self {
        Self {
            pool,
            provider,
            emitter: Emitter::new(SERVICE, stream),
            answers: Answers::default(),
        }
    }

    /// Charges the orders of `events` not yet paid nor cancelled, outside any
    /// transaction, keeping the answers for [`Saga::record`].
    async fn charge(&self, events: &[&Envelope]) -> Result<HashSet<Uuid>, HandlerError> {
        let mut wanted = Vec::new();
        let mut cancelled_here = HashSet::new();
        for event in events {
            match step(event)? {
                Some(Step::Charge(reserved)) if !cancelled_here.contains(&reserved.order_id) => {
                    wanted.push((event.id, reserved));
                }
                Some(Step::Cancel(order_id)) => {
                    cancelled_here.insert(order_id);
                }
                _ => {}
            }
        }
        if wanted.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(_, r)| r.order_id).collect();
        let settled = payments::paid_or_cancelled(&self.pool, &ids)
            .await
            .or_retry(|| format!("reading the payments of {} orders", ids.len()))?;
        let charges: Vec<(Uuid, Uuid, ChargeRequest)> = wanted
            .iter()
            .filter(|(_, reserved)| !settled.contains(&reserved.order_id))
            .map(|(event_id, reserved)| (*event_id, reserved.order_id, charge_of(reserved)))
            .collect();
        let provider = &self.provider;
        let answers: Vec<(Uuid, ChargeOutcome)> = futures::stream::iter(charges)
            .map(|(event_id, order_id, request)| {
                let provider = provider.clone();
                async move {
                    let answer = provider
                        .charge(&request)
                        .await
                        .or_retry(|| format!("charging order {order_id}"))?;
                    Ok::<_, HandlerError>((event_id, answer))
                }
            })
            .buffer_unordered(CHARGES_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        self.answers.keep(answers);
        Ok(HashSet::new())
    }

    /// Records what `events` did, in `tx`: the charges answered, the cancellations and
    /// the refunds they call for, one statement for each kind.
    async fn record(&self, tx: &mut Tx, events: &[Envelope]) -> Result<(), HandlerError> {
        let mut steps = Vec::with_capacity(events.len());
        for event in events {
            if let Some(step) = step(event)? {
                steps.push((event, step));
            }
        }
        if steps.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = steps.iter().map(|(_, step)| order_of(step)).collect();
        payments::lock_orders(tx, &ids)
            .await
            .or_retry(|| format!("locking {} orders", ids.len()))?;
        let (recorded, mut cancelled) = payments::recorded_for(tx, &ids)
            .await
            .or_retry(|| format!("reading the payments of {} orders", ids.len()))?;
        let mut paid: HashMap<Uuid, Payment> = recorded
            .into_iter()
            .map(|payment| (payment.order_id, payment))
            .collect();
        let mut answers = self.answers.take(events);

        // The batch's steps in stream order, against what is recorded and what the
        // steps before them did.
        let mut new_payments = Vec::new();
        let mut newly_cancelled = Vec::new();
        let mut refunds: Vec<(&Envelope, Uuid)> = Vec::new();
        for (event, step) in &steps {
            match step {
                Step::Charge(reserved) => {
                    if paid.contains_key(&reserved.order_id) {
                        continue;
                    }
                    let answer = answers.remove(&event.id);
                    if cancelled.contains(&reserved.order_id) && answer.is_none() {
                        continue;
                    }
                    let Some(answer) = answer else {
                        return Err(HandlerError::Retry(anyhow::anyhow!(
                            "no answer from the provider for order {}",
                            reserved.order_id
                        )));
                    };
                    let (status, reference) = match answer {
                        ChargeOutcome::Approved { reference } => (Status::Succeeded, reference),
                        ChargeOutcome::Declined { reference } => (Status::Declined, reference),
                    };
                    if status == Status::Succeeded && cancelled.contains(&reserved.order_id) {
                        // Cancelled while its charge was made: hand the money back.
                        refunds.push((event, reserved.order_id));
                    }
                    let payment = NewPayment {
                        id: Uuid::now_v7(),
                        order_id: reserved.order_id,
                        user_id: reserved.user_id,
                        amount_cents: reserved.total_cents,
                        currency: reserved.currency.clone(),
                        status,
                        provider_ref: reference,
                    };
                    paid.insert(reserved.order_id, payment.recorded());
                    new_payments.push((*event, payment));
                }
                Step::Cancel(order_id) => {
                    if cancelled.insert(*order_id) {
                        newly_cancelled.push(*order_id);
                    }
                    if paid
                        .get(order_id)
                        .is_some_and(|p| p.status == Status::Succeeded)
                        && !refunds.iter().any(|(_, id)| id == order_id)
                    {
                        refunds.push((event, *order_id));
                    }
                }
            }
        }

        remember_cancelled(tx, &newly_cancelled).await?;
        payments::insert_all(tx, &new_payments.iter().map(|(_, p)| p).collect::<Vec<_>>())
            .await
            .or_retry(|| format!("recording {} payments", new_payments.len()))?;
        for (event, payment) in &new_payments {
            let event_type = match payment.status {
                Status::Declined => types::PAYMENT_DECLINED,
                _ => types::PAYMENT_SUCCEEDED,
            };
            self.emitter
                .emit(tx, event, event_type, &outcome(&payment.recorded()))?;
            tracing::info!(order_id = %payment.order_id, status = payment.status.as_str(), "payment made");
        }

        // Refunds are rare (a cancellation after a capture): one provider call each.
        let mut refunded = Vec::with_capacity(refunds.len());
        for (event, order_id) in refunds {
            let payment = &paid[&order_id];
            self.provider
                .refund(&payment.provider_ref)
                .await
                .or_retry(|| format!("refunding order {order_id}"))?;
            self.emitter
                .emit(tx, event, types::PAYMENT_REFUNDED, &outcome(payment))?;
            tracing::info!(%order_id, "payment refunded");
            refunded.push(payment.id);
        }
        payments::mark_refunded(tx, &refunded)
            .await
            .or_retry(|| format!("recording {} refunds", refunded.len()))
    }
}

impl Effect for Saga {
    fn prepare<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Result<HashSet<Uuid>, HandlerError>> {
        Box::pin(self.charge(events))
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(self.record(tx, events))
    }
}
