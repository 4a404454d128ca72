//! `POST /orders/{id}/cancel` (owner or admin) → 202 Order, now `cancelled` with
//! `cancel_reason` `cancelled_by_user`; 409 if it was already cancelled.
//!
//! The order and its `order.cancelled` commit together; the inventory service then
//! gives the stock back and the payment service refunds a capture.

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use contracts::events::types;
use service_kit::internal_auth::Caller;
use service_kit::{Json, Problem};

use super::shared::{commit_with_event, visible_order};
use crate::orders::{self, Order, Status, reasons};
use crate::saga;
use crate::state::AppState;

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Order>), Problem> {
    let order = visible_order(&state, &id, &caller).await?;
    let mut tx = event_bus::Tx::begin(&state.pool)
        .await
        .with_context(|| format!("cancelling order {}", order.id))?;
    let cancelled = orders::cancel(
        &mut tx,
        order.id,
        reasons::CANCELLED_BY_USER,
        &[Status::Pending, Status::Confirmed],
    )
    .await
    .with_context(|| format!("cancelling order {}", order.id))?
    .ok_or_else(|| Problem::conflict("This order is already cancelled."))?;
    let event = saga::cancelled(&cancelled);
    commit_with_event(&state, tx, cancelled.id, types::ORDER_CANCELLED, &event).await?;
    tracing::info!(order_id = %cancelled.id, event = types::ORDER_CANCELLED, "order cancelled by its user");
    Ok((StatusCode::ACCEPTED, Json(cancelled)))
}
