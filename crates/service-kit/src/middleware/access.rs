//! The access log and the HTTP metrics: one line and one observation per request.
//!
//! Metrics are labelled by route template (`/users/{id}`), never by raw path, so a
//! scanner walking random URLs cannot blow up the number of series.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Copies the matched route template onto the response, where [`layer`] (which runs
/// before routing and so cannot see it on the request) picks it up.
pub async fn route_template(request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

/// Logs the request's outcome and records `http_requests_total`,
/// `http_request_duration_seconds` and `http_requests_in_flight`.
pub async fn layer(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let response = next.run(request).await;
    in_flight.decrement(1.0);

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |path| path.as_str())
        .to_owned();

    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        &[("method", method.clone()), ("route", route.clone())]
    )
    .record(elapsed.as_secs_f64());

    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::warn!(status, route, latency_ms, "request failed");
    } else {
        tracing::info!(status, route, latency_ms, "request completed");
    }
    response
}
