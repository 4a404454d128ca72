//! The notification service's routes, behind the service-key check.
//!
//! | route | public API |
//! |---|---|
//! | `GET /notifications` | the same under `/api` (the caller's own) |
//! | `POST /webhooks`, `GET /webhooks` | the same under `/api` (admin) |
//! | `DELETE /webhooks/{id}`, `GET /webhooks/{id}/deliveries` | the same under `/api` (admin) |

mod notifications;
mod webhooks;

use axum::Router;
use axum::routing::{delete, get};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(notifications::list))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", delete(webhooks::remove))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
}
