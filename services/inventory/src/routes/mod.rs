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
mod stock;

use axum::Router;
use axum::routing::{get, post};
use service_kit::Problem;
use service_kit::internal_auth::Caller;
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(read::list).post(create::create))
        .route("/products/{id}", get(read::get))
        .route("/products/{id}/stock", post(stock::adjust))
        .route("/internal/products/batch", post(batch::batch))
}

fn not_found() -> Problem {
    Problem::not_found("No such product.")
}

/// The id in the path, or the 404 an unknown product would get.
fn product_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

/// Only admins change the catalogue.
fn require_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden("Only an admin may change products."))
    }
}
