//! The order service's routes. Every route here sits behind the service-key check and
//! acts for the signed-in user the gateway names.
//!
//! | route | public API |
//! |---|---|
//! | `POST /orders` | the same under `/api` |
//! | `GET /orders`, `GET /orders/{id}` | the same under `/api` (owner; admin: all) |
//! | `POST /orders/{id}/cancel` | the same under `/api` (owner or admin) |

mod cancel;
mod create;
mod read;

use axum::Router;
use axum::routing::{get, post};
use event_bus::Envelope;
use service_kit::Problem;
use service_kit::internal_auth::Caller;
use uuid::Uuid;

use crate::AppState;
use crate::orders::{self, Order};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(read::list).post(create::create))
        .route("/orders/{id}", get(read::get))
        .route("/orders/{id}/cancel", post(cancel::cancel))
}

/// The order `id` if `caller` may see it; 404 alike for a missing order and another
/// user's, so no one learns which orders exist.
async fn visible_order(state: &AppState, id: &str, caller: &Caller) -> Result<Order, Problem> {
    let not_found = || Problem::not_found("No such order.");
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    orders::find(&state.pool, id)
        .await?
        .filter(|order| caller.may_access(order.user_id))
        .ok_or_else(not_found)
}

/// A new event caused by the current request: it carries the request id as its
/// correlation id.
fn request_event(event_type: &str, payload: &impl serde::Serialize) -> Result<Envelope, Problem> {
    let event = Envelope::new(event_type, crate::SERVICE, payload).map_err(Problem::internal)?;
    Ok(match service_kit::request_id::current() {
        Some(request_id) => event.correlated(request_id),
        None => event,
    })
}
