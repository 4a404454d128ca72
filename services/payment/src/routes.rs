//! The payment service's routes, behind the service-key check.
//!
//! | route | public API |
//! |---|---|
//! | `GET /payments` | the same under `/api` (owner; admin: all) |

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use contracts::List;
use service_kit::internal_auth::Caller;
use service_kit::limit::Limit;
use service_kit::{Json, Problem};

use crate::payments::{self, Payment};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/payments", get(list))
}

/// `GET /payments[?limit=N]` → `{data: [Payment]}`, the newest 100 (or N ≤ 1000) first: the caller's, or all for an admin.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Limit(limit): Limit,
) -> Result<Json<List<Payment>>, Problem> {
    let owner = (!caller.is_admin()).then_some(caller.user_id);
    Ok(Json(List {
        data: payments::list(&state.pool, owner, limit)
            .await
            .context("listing payments")?,
    }))
}
