//! `POST /auth/login {email, password}` → 200 `{access_token, token_type, expires_in}`.
//!
//! An unknown email and a wrong password get the same 401 body after the same Argon2
//! work, so the endpoint does not tell which addresses have accounts.

use anyhow::Context;
use axum::extract::State;
use serde::Deserialize;
use service_kit::{Json, Problem};

use crate::state::AppState;
use crate::tokens::{self, AccessToken};
use crate::users;

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<Json<AccessToken>, Problem> {
    let found = users::find_with_hash(&state.pool, &body.email)
        .await
        .context("finding the account signing in")?;
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let verified = state.passwords.verify(body.password, hash).await?;
    let Some(user) = user.filter(|_| verified) else {
        return Err(Problem::unauthorized("Invalid email or password."));
    };
    let token = tokens::issue(&state.pool, &state.tokens, &user).await?;
    tracing::info!(user_id = %user.id, "user logged in");
    Ok(Json(token))
}
