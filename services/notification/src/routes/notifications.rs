//! `GET /notifications[?limit=N]` → `{data: [Notification]}`: the caller's own, newest
//! first (an admin's own too: notifications are personal).

use anyhow::Context;
use axum::extract::State;
use contracts::List;
use service_kit::internal_auth::Caller;
use service_kit::limit::Limit;
use service_kit::{Json, Problem};

use crate::notifications::{self, Notification};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Limit(limit): Limit,
) -> Result<Json<List<Notification>>, Problem> {
    Ok(Json(List {
        data: notifications::list(&state.pool, caller.user_id, limit)
            .await
            .with_context(|| format!("listing the notifications of user {}", caller.user_id))?,
    }))
}
