//! `POST /internal/users/batch {ids}` → `{data: [User]}`: the users among `ids` that
//! exist. For other services (the notification service looks up email addresses); the
//! gateway never routes to `/internal`.

use anyhow::Context;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service_kit::problem::FieldError;
use service_kit::{Json, Problem};
use uuid::Uuid;

use crate::state::AppState;
use crate::users::{self, User};

/// Most ids one call may ask for.
pub const MAX_IDS: usize = 100;

#[derive(Deserialize)]
pub struct BatchRequest {
    ids: Vec<Uuid>,
}

#[derive(Serialize)]
pub struct UserList {
    data: Vec<User>,
}

pub async fn batch(
    State(state): State<AppState>,
    Json(body): Json<BatchRequest>,
) -> Result<Json<UserList>, Problem> {
    if body.ids.len() > MAX_IDS {
        return Err(Problem::validation(vec![FieldError::new(
            "ids",
            format!("must list at most {MAX_IDS} ids"),
        )]));
    }
    let data = users::find_many(&state.pool, &body.ids)
        .await
        .context("reading a batch of users")?;
    Ok(Json(UserList { data }))
}
