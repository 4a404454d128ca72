//! `GET /users/me` → the signed-in user.

use anyhow::Context;
use axum::extract::State;
use service_kit::internal_auth::Caller;
use service_kit::{Json, Problem};

use crate::state::AppState;
use crate::users::{self, User};

pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<User>, Problem> {
    users::find(&state.pool, caller.user_id)
        .await
        .with_context(|| format!("reading user {}", caller.user_id))?
        .map(Json)
        .ok_or_else(|| Problem::not_found("No such user."))
}
