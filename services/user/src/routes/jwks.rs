//! `GET /auth/jwks` → the public keys that may still verify a live token.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use service_kit::{Json, Problem};

use crate::signing_keys;
use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    let jwks = signing_keys::jwks(&state.pool, state.tokens.ttl_seconds).await?;
    // Verifiers may cache it briefly; a rotation's new key must reach them well within
    // a token lifetime.
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(jwks)))
}
