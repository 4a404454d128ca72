//! The inventory service's routes. Every route here sits behind the service-key check.
//!
//! | route | public API |
//! |---|---|
//! | `GET /products`, `GET /products/{id}` | the same under `/api` (any user) |
//! | `POST /products`, `POST /products/{id}/stock` | the same under `/api` (admin) |
//! | `POST /internal/products/batch` | none: the order service prices lines with it |

mod batch;
mod create;
mod read;
mod shared;
mod stock;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(read::list).post(create::create))
        .route("/products/{id}", get(read::get))
        .route("/products/{id}/stock", post(stock::adjust))
        .route("/internal/products/batch", post(batch::batch))
}
