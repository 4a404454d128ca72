//! The one middleware stack every service runs behind.
//!
//! # Layout
//!
//! From the outside in (the order of [`apply`]):
//!
//! 1. [`serve`]: one layer doing, in one future, the work every request needs before
//!    and after its handler: the request id ([`crate::request_id`]) first, so every log
//!    line, metric and problem below belongs to one; the trace context
//!    ([`crate::trace_context`]); the access log and metrics ([`access`]), which see the
//!    final status; the time limit ([`timeout`]: the server's timeout or the caller's
//!    deadline, whichever is sooner); and the rewriting of any error response that is
//!    not yet problem+json ([`problems`]: axum's 404 and 405, the body limit's 413, a
//!    panic's 500). One layer rather than one per concern because each layer of axum's
//!    `from_fn` boxes a future and clones the stack below it per request, which showed
//!    as a third of the gateway's proxy time; each concern stays in its own module.
//! 2. catch-panic: a panicking handler becomes a 500, never a dropped connection or a
//!    stack trace.
//! 3. The body limit (1 MiB) on the declared length; axum's `DefaultBodyLimit` covers
//!    bodies without one.
//! 4. Sensitive headers: `Authorization` and keys are marked so no layer logs them.
//!
//! The route-template layer ([`access::route_template`]) is added with `route_layer` by
//! [`apply`], because only matched routes know their template.

pub mod access;
pub mod problems;
pub mod timeout;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;

use crate::{deadline, request_id, trace_context};

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
                .layer(from_fn_with_state(request_timeout, serve))
                .layer(CatchPanicLayer::custom(problems::from_panic))
                .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
                .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS)),
        )
}

/// Everything the stack does around a request's handler, in the order each part needs
/// the one before it.
pub async fn serve(
    State(request_timeout): State<Duration>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id::adopt(&mut request);
    let served = trace_context::Served::begin(&request);
    let span = request_id::span(&id, &request, &served.trace);
    let observation = access::Observation::begin(&request);
    let now = Instant::now();
    let budget = deadline::budget(&request);
    let limit = timeout::Limit::sooner(now, request_timeout, budget);

    let handled = deadline::serve(budget.map(|b| now + b), next.run(request));
    let handled = trace_context::scope(served.trace, limit.run(handled));
    // Problems are rendered with the request id, so inside its scope.
    let rendered = async { problems::rewrite(handled.await) };
    let mut response = request_id::scope(id.clone(), rendered.instrument(span.clone())).await;

    request_id::echo(&id, &mut response);
    served.finish(&mut response);
    // The access log line belongs to the request's span, like every line before it.
    span.in_scope(|| observation.finish(&response));
    response
}
