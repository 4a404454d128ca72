//! `GET /orders[?limit=N]` → `{data: [Order]}`, the newest 100 (or N ≤ 1000) first (the caller's; an admin's: all);
//! `GET /orders/{id}` → Order (owner or admin).

use anyhow::Context;
use axum::extract::{Path, State};
use contracts::List;
use service_kit::internal_auth::Caller;
use service_kit::limit::Limit;
use service_kit::{Json, Problem};

use super::shared::visible_order;
use crate::orders::{self, Order};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Limit(limit): Limit,
) -> Result<Json<List<Order>>, Problem> {
    let owner = (!caller.is_admin()).then_some(caller.user_id);
    Ok(Json(List {
        data: orders::list(&state.pool, owner, limit)
            .await
            .context("listing orders")?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Order>, Problem> {
    visible_order(&state, &id, &caller).await.map(Json)
}
