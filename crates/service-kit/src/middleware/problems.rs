//! Every error response leaves as problem+json.
//!
//! Handlers already return [`Problem`]s; this catches the responses made elsewhere:
//! axum's 404 and 405, the body limit's 413, and panics.

use std::any::Any;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{PROBLEM_JSON, Problem};

/// `response` as problem+json if it is an error response that is not one yet.
pub fn rewrite(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "No such resource.",
        StatusCode::METHOD_NOT_ALLOWED => "This method is not allowed on this resource.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than 1 MiB.",
        StatusCode::REQUEST_TIMEOUT => "The request took too long to arrive.",
        _ if status.is_server_error() => "An unexpected error occurred.",
        _ => "The request could not be processed.",
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(status, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = problem_parts.headers.get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// The catch-panic handler: logs the panic message, answers a bare 500.
pub fn from_panic(payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "An unexpected error occurred.",
    )
    .into_response()
}
