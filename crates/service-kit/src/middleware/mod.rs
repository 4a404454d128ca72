//! The middleware every service runs behind, and the parts of it a service that fuses
//! its own stack (the gateway) builds from.
//!
//! # Layout
//!
//! [`apply`] puts, from the outside in:
//!
//! 1. tower-http's sensitive-header marking (`Authorization`, cookies and the service
//!    key, so nothing logs them);
//! 2. [`observe`]: the request id ([`crate::request_id`]), so every log line, metric
//!    and problem below belongs to one; the trace context ([`trace`]); the access log
//!    and metrics ([`access`]), which see the final status; the time limit
//!    ([`timeout`]: the server's timeout or the caller's deadline, whichever is sooner);
//!    and the rewriting of any error response that is not yet problem+json
//!    ([`problems`]: axum's 404 and 405, the body limit's 413, a panic's 500);
//! 3. tower-http's panic catching (a panicking handler is a 500 problem, never a
//!    dropped connection) and body limit (1 MiB: 413 for a larger declared length, an
//!    error past it for a streamed body);
//! 4. on the router itself, axum's `DefaultBodyLimit` for the extractors and the route
//!    template for the access metrics ([`access::route_template`]), added with
//!    `route_layer` because only matched routes know their template.

pub mod access;
pub mod problems;
pub mod timeout;
pub mod trace;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use futures::FutureExt;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;

use crate::{deadline, request_id};

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
    prepare(router).layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_HEADERS))
            .layer(from_fn_with_state(request_timeout, observed))
            .layer(CatchPanicLayer::custom(problems::from_panic))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
    )
}

/// What a router needs on itself: its route templates for the access metrics and the
/// body limit for its extractors. For a router that a service puts behind a stack of
/// its own making (the gateway's ops routes).
pub fn prepare(router: Router) -> Router {
    router
        .route_layer(from_fn(access::route_template))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// [`observe`] as an axum middleware, naming routes by the router's templates.
async fn observed(
    State(request_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    observe(
        request_timeout,
        request,
        |request| next.run(request),
        access::route_of,
    )
    .await
}

/// Everything the stack does around a request's handling (`handle`), in the order each
/// part needs the one before it; `route_of` names the route the response came from.
///
/// `handle`'s future is wrapped in plain future types (tokio's scoped and timeout
/// futures, `map`), never in `async` blocks: each of those would hold the future it
/// wraps twice (as its argument and as what it awaits), and the gateway moves this
/// future into a box on every request.
pub async fn observe<F, H>(
    request_timeout: Duration,
    mut request: Request,
    handle: H,
    route_of: access::RouteOf,
) -> Response
where
    H: FnOnce(Request) -> F,
    F: Future<Output = Response>,
{
    let id = request_id::adopt(&mut request);
    let mut served = trace::Served::begin(&request);
    let span = request_id::span(&id, &request, &served.trace);
    let now = Instant::now();
    let observation = access::Observation::begin(&request, now);
    let budget = deadline::budget(&request);
    let limit = timeout::Limit::sooner(now, request_timeout, budget);

    let handled = deadline::serve(budget.map(|b| now + b), handle(request));
    let handled = served.scope(limit.run(handled));
    // Problems are rendered with the request id, so inside its scope.
    let rendered = handled.map(problems::rewrite);
    let mut response = request_id::scope(id.clone(), rendered.instrument(span.clone())).await;

    request_id::echo(&id, &mut response);
    served.finish(&mut response, route_of);
    // The access log line belongs to the request's span, like every line before it.
    span.in_scope(|| observation.finish(&response, route_of(&response)));
    response
}
