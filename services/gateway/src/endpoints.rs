//! The gateway's own endpoints, on an ordinary axum [`Router`]: the dashboard, the
//! ops console's API, the OpenAPI document and the AsyncAPI one. None needs the proxy's speed, so they
//! are plain handlers; they sit behind the same front door as every `/api` request
//! ([`crate::proxy::handle`]: canonical path, token, rate limit), which hands them
//! the request with its canonical path and, when a token was verified, its caller as
//! an extension ([`Signed`] reads it).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::Signed;
use crate::console;
use crate::dashboard;
use crate::problems::{method_not_allowed, not_found};
use crate::routes::{ASYNCAPI_PATH, DASHBOARD_PATH, OPENAPI_PATH, OPS_PREFIX};
use crate::state::Gateway;

/// The OpenAPI 3.1 document of the public API (API.md), kept beside the gateway.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The AsyncAPI 3 document of the events on the streams, generated from the contract
/// types ([`contracts::asyncapi`]) once, on first request.
static ASYNCAPI: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| contracts::asyncapi::document().to_string());

/// The router of the gateway's own endpoints, over the state every worker shares.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let console = gateway.console.clone();
    Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .route(ASYNCAPI_PATH, get(asyncapi))
        .route(DASHBOARD_PATH, get(dashboard))
        .with_state(gateway)
        .nest(OPS_PREFIX, console::api::router(console))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn asyncapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ASYNCAPI.as_str(),
    )
        .into_response()
}

async fn dashboard(State(gateway): State<Arc<Gateway>>, Signed(caller): Signed) -> Response {
    dashboard::dashboard(&gateway.backends, &caller).await
}
