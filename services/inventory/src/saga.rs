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
//! share a transaction (`event_bus::inbox::Effect`), and each kind of step is one
//! statement for all of them: the reservations of many orders are taken at once when
//! the stock covers them all, else each order is reserved alone.

use contracts::events::{
    InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, OrderRef, types,
};
use std::collections::HashSet;

use event_bus::saga::{self, Emitter, Participant};
use event_bus::{Effect, Envelope, HandlerError, OrRetry, Tx};
use uuid::Uuid;

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
    Participant::new(Emitter::new(SERVICE, stream), |tx, events, emitter| {
        Box::pin(apply(tx, events, emitter))
    })
}

/// What one event asks.
pub(crate) enum Step {
    Reserve(OrderCreated),
    Commit(Uuid),
    Release { order_id: Uuid, cancelled: bool },
}

pub(crate) fn step(event: &Envelope) -> Result<Option<Step>, HandlerError> {
    let order_id = |event: &Envelope| {
        event
            .decode::<OrderRef>()
            .map(|o| o.order_id)
            .map_err(HandlerError::poison)
    };
    Ok(Some(match event.event_type.as_str() {
        types::ORDER_CREATED => Step::Reserve(event.decode().map_err(HandlerError::poison)?),
        types::PAYMENT_SUCCEEDED => Step::Commit(order_id(event)?),
        types::PAYMENT_DECLINED | types::ORDER_CANCELLED => Step::Release {
            order_id: order_id(event)?,
            cancelled: event.event_type == types::ORDER_CANCELLED,
        },
        _ => return Ok(None),
    }))
}

impl Step {
    fn order_id(&self) -> Uuid {
        match self {
            Self::Reserve(order) => order.order_id,
            Self::Commit(order_id) | Self::Release { order_id, .. } => *order_id,
        }
    }
}

/// Applies the events ready together in `tx`: each kind of step for all of them in one
/// statement. Events of one order that arrive together are applied one after another,
/// in stream order, as they would be alone.
async fn apply(tx: &mut Tx, events: &[Envelope], emitter: &Emitter) -> Result<(), HandlerError> {
    let mut steps = Vec::with_capacity(events.len());
    for event in events {
        if let Some(step) = step(event)? {
            steps.push((event, step));
        }
    }
    let mut orders: HashSet<Uuid> = HashSet::new();
    if steps.iter().all(|(_, step)| orders.insert(step.order_id())) {
        return apply_steps(tx, steps, emitter).await;
    }
    for (event, step) in steps {
        apply_steps(tx, vec![(event, step)], emitter).await?;
    }
    Ok(())
}

/// Applies `steps`, each of a different order.
async fn apply_steps(
    tx: &mut Tx,
    steps: Vec<(&Envelope, Step)>,
    emitter: &Emitter,
) -> Result<(), HandlerError> {
    let mut reserves = Vec::new();
    let mut commits = Vec::new();
    let mut releases = Vec::new();
    let mut cancellations = Vec::new();
    for (event, step) in steps {
        match step {
            Step::Reserve(order) => reserves.push((event, order)),
            Step::Commit(order_id) => commits.push(order_id),
            Step::Release {
                order_id,
                cancelled,
            } => {
                if cancelled {
                    cancellations.push(order_id);
                }
                releases.push((event, order_id));
            }
        }
    }
    if !cancellations.is_empty() {
        saga::remember_cancelled(tx, &cancellations).await?;
    }
    if !releases.is_empty() {
        let ids: Vec<Uuid> = releases.iter().map(|(_, id)| *id).collect();
        let released = reservations::release(tx, &ids)
            .await
            .or_retry(|| format!("releasing the stock of {} orders", ids.len()))?;
        for (event, order_id) in releases {
            if released.contains(&order_id) {
                let payload = InventoryReleased { order_id };
                emitter.emit(tx, event, types::INVENTORY_RELEASED, &payload)?;
            }
        }
    }
    if !commits.is_empty() {
        reservations::commit(tx, &commits)
            .await
            .or_retry(|| format!("committing the stock of {} orders", commits.len()))?;
    }
    match reserves.as_slice() {
        [] => Ok(()),
        [(event, order)] => reserve_one(tx, event, order, emitter).await,
        _ => reserve_together(tx, &reserves, emitter).await,
    }
}

/// Reserves one order's stock, or rejects it.
async fn reserve_one(
    tx: &mut Tx,
    event: &Envelope,
    order: &OrderCreated,
    emitter: &Emitter,
) -> Result<(), HandlerError> {
    let lines: Vec<_> = order
        .items
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect();
    match reservations::reserve(tx, order.order_id, &lines)
        .await
        .or_retry(|| format!("reserving the stock of order {}", order.order_id))?
    {
        Reserved::All => emitter.emit(tx, event, types::INVENTORY_RESERVED, &reserved(order)),
        Reserved::OutOfStock => {
            let rejected = InventoryRejected {
                order_id: order.order_id,
                reason: "out_of_stock".into(),
            };
            emitter.emit(tx, event, types::INVENTORY_REJECTED, &rejected)
        }
        Reserved::AlreadyDone | Reserved::Cancelled => Ok(()),
    }
}

/// Reserves the stock of several orders in one statement. When the stock does not
/// cover them all, fails: the consumer then reserves each alone, turning away only
/// those it cannot cover.
async fn reserve_together(
    tx: &mut Tx,
    orders: &[(&Envelope, OrderCreated)],
    emitter: &Emitter,
) -> Result<(), HandlerError> {
    let ids: Vec<Uuid> = orders.iter().map(|(_, o)| o.order_id).collect();
    let (reserved_before, cancelled) = reservations::reserved_or_cancelled(tx, &ids)
        .await
        .or_retry(|| format!("reading the reservations of {} orders", ids.len()))?;
    let lines: Vec<(Uuid, Vec<(Uuid, i64)>)> = orders
        .iter()
        .map(|(_, o)| {
            let lines = o.items.iter().map(|l| (l.product_id, l.quantity)).collect();
            (o.order_id, lines)
        })
        .collect();
    let mut wanted: Vec<(Uuid, &[(Uuid, i64)])> = Vec::new();
    for ((event, _), (order_id, lines)) in orders.iter().zip(&lines) {
        if reserved_before.contains(order_id) || cancelled.contains(order_id) {
            continue;
        }
        if lines.iter().any(|(_, quantity)| *quantity <= 0) {
            let rejected = InventoryRejected {
                order_id: *order_id,
                reason: "out_of_stock".into(),
            };
            emitter.emit(tx, event, types::INVENTORY_REJECTED, &rejected)?;
            continue;
        }
        wanted.push((*order_id, lines.as_slice()));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let all = reservations::reserve_all(tx, &wanted)
        .await
        .or_retry(|| format!("reserving the stock of {} orders", wanted.len()))?;
    if !all {
        return Err(HandlerError::retry(anyhow::anyhow!(
            "the stock does not cover all {} orders together; each goes alone",
            wanted.len()
        )));
    }
    let reserving: HashSet<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
    for (event, order) in orders {
        if reserving.contains(&order.order_id) {
            emitter.emit(tx, event, types::INVENTORY_RESERVED, &reserved(order))?;
        }
    }
    Ok(())
}

/// `inventory.reserved` for `order`.
fn reserved(order: &OrderCreated) -> InventoryReserved {
    InventoryReserved {
        order_id: order.order_id,
        user_id: order.user_id,
        total_cents: order.total_cents,
        currency: order.currency.clone(),
        payment_method: order.payment_method.clone(),
    }
}
