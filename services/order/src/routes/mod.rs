//! The order service's routes. Every route here sits behind the service-key check and
//! acts for the signed-in user the gateway names.
//!
//! | route | public API |
//! |---|---|
//! | `POST /orders` | the same under `/api` |
//! | `GET /orders`, `GET /orders/{id}` | the same under `/api` (owner; admin: all) |
//! | `POST /orders/{id}/cancel` | the same under `/api` (owner or admin) |

mod cancel;
mod create;
mod read;
mod shared;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(read::list).post(create::create))
        .route("/orders/{id}", get(read::get))
        .route("/orders/{id}/cancel", post(cancel::cancel))
}
