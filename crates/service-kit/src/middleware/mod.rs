//! The one middleware stack every service runs behind.
//!
//! # Layout
//!
//! From the outside in (the order of [`apply`]):
//!
//! 1. [`crate::request_id::layer`]: first, so every log line, metric, panic and problem
//!    below belongs to a request id.
//! 2. [`access::layer`]: the access log line and the HTTP metrics; it sees the final
//!    status, after problems are rendered.
//! 3. [`problems::layer`]: any error response that is not yet problem+json (axum's 404
//!    and 405, a 413 from the body limit, a panic's 500) is rewritten as one.
//! 4. catch-panic: a panicking handler becomes a 500, never a dropped connection or a
//!    stack trace.
//! 5. [`crate::trace_context::layer`]: continues the caller's W3C trace or starts one.
//! 6. [`timeout::layer`]: a request that runs too long is answered with 504;
//!    [`crate::deadline::layer`]: so is one whose caller's deadline has passed.
//! 7. The body limit (1 MiB) on the declared length; axum's `DefaultBodyLimit` covers
//!    bodies without one.
//! 8. Sensitive headers: `Authorization` and keys are marked so no layer logs them.
//!
//! The route-template layer ([`access::route_template`]) is added with `route_layer` by
//! [`apply`], because only matched routes know their template.

pub mod access;
pub mod problems;
pub mod timeout;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::request_id;

/// Largest request body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Headers never to be logged.
pub const SENSITIVE_HEADERS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::HeaderName::from_static("x-service-key"),
];

/// Wraps a service's router (ops routes included) in the shared stack.
pub fn apply(router: Router, request_timeout: Duration) -> Router {
    router
        .route_layer(from_fn(access::route_template))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(request_id::layer))
                .layer(from_fn(access::layer))
                .layer(from_fn(problems::layer))
                .layer(CatchPanicLayer::custom(problems::from_panic))
                .layer(from_fn(crate::trace_context::layer))
                .layer(from_fn_with_state(request_timeout, timeout::layer))
                .layer(from_fn(crate::deadline::layer))
                .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
                .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS)),
        )
}
