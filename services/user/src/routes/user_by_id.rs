//! `GET /users/{id}` and `PATCH /users/{id} {name}`: the user themselves or an admin.
//! Anyone else gets the same 404 as for a user that does not exist.

use anyhow::Context;
use axum::extract::{Path, State};
use serde::Deserialize;
use service_kit::internal_auth::Caller;
use service_kit::{Json, Problem};
use uuid::Uuid;

use crate::state::AppState;
use crate::users::{self, User};
use crate::validation::{self, Errors};

fn not_found() -> Problem {
    Problem::not_found("No such user.")
}

/// The id in the path, or the 404 an unknown user would get.
fn parse_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, Problem> {
    let id = parse_id(&id)?;
    if !caller.may_access(id) {
        return Err(not_found());
    }
    users::find(&state.pool, id)
        .await
        .with_context(|| format!("reading user {id}"))?
        .map(Json)
        .ok_or_else(not_found)
}

/// What a user may change about themselves. Unknown members (`email`, `roles`) are
/// refused rather than silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    name: Option<String>,
}

pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UserUpdate>,
) -> Result<Json<User>, Problem> {
    let id = parse_id(&id)?;
    if !caller.may_access(id) {
        return Err(not_found());
    }
    let mut errors = Errors::default();
    let name = errors
        .required("name", body.name)
        .and_then(|name| errors.check("name", validation::name(&name)));
    errors.finish()?;
    let Some(name) = name else {
        return Err(Problem::internal(anyhow::anyhow!("validated name missing")));
    };
    users::rename(&state.pool, id, &name)
        .await
        .with_context(|| format!("renaming user {id}"))?
        .map(Json)
        .ok_or_else(not_found)
}
