//! The server-side request timeout: past it the handler is dropped and the client gets a
//! 504 problem, so a stuck dependency cannot pile up requests forever.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

pub async fn layer(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "The request took too long and was abandoned.",
            )
            .into_response()
        }
    }
}
