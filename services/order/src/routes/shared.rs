//! What several routes do the same way: find an order the caller may see, and make
//! the event a request causes.

use anyhow::Context;
use event_bus::Envelope;
use service_kit::Problem;
use service_kit::internal_auth::Caller;
use uuid::Uuid;

use crate::orders::{self, Order};
use crate::state::AppState;

/// The order `id` if `caller` may see it; 404 alike for a missing order and another
/// user's, so no one learns which orders exist.
pub(super) async fn visible_order(
    state: &AppState,
    id: &str,
    caller: &Caller,
) -> Result<Order, Problem> {
    let not_found = || Problem::not_found("No such order.");
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    orders::find(&state.pool, id)
        .await
        .with_context(|| format!("reading order {id}"))?
        .filter(|order| caller.may_access(order.user_id))
        .ok_or_else(not_found)
}

/// Commits `tx` with the event of `event_type` it caused (`payload`), on this service's
/// stream (the partition of `order`, the event's ordering key), waking the relay;
/// `order` names the order in what a failure logs.
pub(super) async fn commit_with_event(
    state: &AppState,
    mut tx: event_bus::Tx,
    order: Uuid,
    event_type: &str,
    payload: &impl serde::Serialize,
) -> Result<(), Problem> {
    let event = request_event(event_type, payload)?.keyed(order.to_string());
    tx.enqueue(&state.order_events, &event)
        .with_context(|| format!("enqueueing {event_type} for order {order}"))?;
    state
        .wake
        .commit(tx)
        .await
        .with_context(|| format!("committing {event_type} for order {order}"))?;
    Ok(())
}

/// A new event caused by the current request: it carries the request id as its
/// correlation id.
fn request_event(event_type: &str, payload: &impl serde::Serialize) -> Result<Envelope, Problem> {
    let event =
        Envelope::new(event_type, crate::state::SERVICE, payload).map_err(Problem::internal)?;
    Ok(match service_kit::request_id::current() {
        Some(request_id) => event.correlated(request_id),
        None => event,
    })
}
