//! The gateway's own endpoints, on an ordinary axum [`Router`]: the dashboard, the
//! ops console's API and the OpenAPI document. None needs the proxy's speed, so they
//! are plain handlers; they sit behind the same front door as every `/api` request
//! ([`crate::proxy::handle`]: canonical path, token, rate limit), which hands them
//! the request with its canonical path and, when a token was verified, its [`Caller`]
//! as an extension ([`Signed`] reads it).

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use service_kit::Problem;
use service_kit::internal_auth::Caller;

use crate::auth::Invalid;
use crate::console;
use crate::dashboard;
use crate::proxy::unauthorized;
use crate::routes::{DASHBOARD_PATH, OPENAPI_PATH, OPS_PREFIX};
use crate::state::Gateway;

/// The OpenAPI 3.1 document of the public API (API.md), kept beside the gateway.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The router of the gateway's own endpoints, over the state every worker shares.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .route(DASHBOARD_PATH, get(dashboard))
        .nest(OPS_PREFIX, console::api::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gateway)
}

/// The caller the front door verified; a request without one is answered 401.
pub struct Signed(pub Caller);

impl<S: Sync> FromRequestParts<S> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| unauthorized(&Invalid::Missing))
    }
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

async fn dashboard(State(gateway): State<Arc<Gateway>>, Signed(caller): Signed) -> Response {
    dashboard::dashboard(&gateway.backends, &caller).await
}

pub(crate) async fn not_found() -> Response {
    Problem::not_found("No such resource.").into_response()
}

/// axum adds the `Allow` header of the route.
pub(crate) async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed here; Allow says which are.",
    )
    .into_response()
}
