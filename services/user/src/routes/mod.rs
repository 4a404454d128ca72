//! The user service's routes, one module per endpoint. Every route here sits behind the
//! service-key check; the gateway maps the public API onto them.
//!
//! | route | public API |
//! |---|---|
//! | `POST /auth/register` | `POST /api/auth/register` |
//! | `POST /auth/login` | `POST /api/auth/login` |
//! | `GET /auth/jwks` | `GET /api/auth/jwks` |
//! | `GET /users/me` | `GET /api/users/me` |
//! | `GET /users/{id}`, `PATCH /users/{id}` | the same under `/api` |
//! | `POST /internal/users/batch` | none: for other services |

mod batch;
mod jwks;
mod login;
mod me;
mod register;
mod user_by_id;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register::register))
        .route("/auth/login", post(login::login))
        .route("/auth/jwks", get(jwks::jwks))
        .route("/users/me", get(me::me))
        .route(
            "/users/{id}",
            get(user_by_id::get_user).patch(user_by_id::update_user),
        )
        .route("/internal/users/batch", post(batch::batch))
}
