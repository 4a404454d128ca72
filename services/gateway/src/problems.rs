//! What the gateway's own endpoints answer for a path or a method they do not have.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::Problem;

pub async fn not_found() -> Response {
    Problem::not_found("No such resource.").into_response()
}

/// axum adds the `Allow` header of the route.
pub async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed here; Allow says which are.",
    )
    .into_response()
}
