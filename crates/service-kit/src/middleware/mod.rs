//! The one middleware stack every service runs behind.
//!
//! # Layout
//!
//! From the outside in (the order of [`apply`]):
//!
//! 1. [`Stack`]: one tower service doing, in one future, the work every request needs
//!    before and after its handler: the sensitive headers marked (`Authorization` and
//!    keys, so nothing logs them); the request id ([`crate::request_id`]), so every
//!    log line, metric and problem below belongs to one; the trace context
//!    ([`crate::trace_context`]); the access log and metrics ([`access`]), which see
//!    the final status; the time limit ([`timeout`]: the server's timeout or the
//!    caller's deadline, whichever is sooner); the body limit (1 MiB, `limit_body`);
//!    a panicking handler caught and made a 500, never a dropped connection; and the
//!    rewriting of any error response that is not yet problem+json ([`problems`]:
//!    axum's 404 and 405, the body limit's 413, a panic's 500). One service rather
//!    than a layer per concern because each layer wraps the request's future in one of
//!    its own, and axum's `from_fn` layers also box it and clone the stack below per
//!    request, which showed as a third of the gateway's proxy time; each concern
//!    stays a function of its own module.
//! 2. axum's `DefaultBodyLimit` (1 MiB) for the extractors that read bodies.
//!
//! The route-template layer ([`access::route_template`]) is added with `route_layer` by
//! [`apply`], because only matched routes know their template.

pub mod access;
pub mod problems;
pub mod timeout;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::{self, BoxFuture, Either};
use http_body_util::Limited;
use tokio::time::Instant;
use tower::{Layer, Service};
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
    prepare(router).layer(StackLayer { request_timeout })
}

/// The part of the stack a router needs inside [`Stack`]: its route templates for the
/// access metrics and the body limit for its extractors. For a router that a service
/// puts behind a [`Stack`] of its own making (the gateway's ops routes).
pub fn prepare(router: Router) -> Router {
    router
        .route_layer(from_fn(access::route_template))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Puts [`Stack`] around a service.
#[derive(Debug, Clone, Copy)]
pub struct StackLayer {
    pub request_timeout: Duration,
}

impl<S> Layer<S> for StackLayer {
    type Service = Stack<S>;

    fn layer(&self, inner: S) -> Stack<S> {
        Stack {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

/// The shared stack around `inner` (see the module's layout).
#[derive(Debug, Clone)]
pub struct Stack<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S> Service<Request> for Stack<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service made ready goes with the request; its clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(serve(self.request_timeout, request, inner).map(Ok))
    }
}

/// Everything the stack does around a request's handler, in the order each part needs
/// the one before it.
///
/// The handler's future is wrapped in plain future types (tokio's scoped and timeout
/// futures, `map`), never in `async` blocks or functions: each of those would hold the
/// future it wraps twice (as its argument and as what it awaits), and nested six deep
/// that made this future 49 KB, copied on every request.
async fn serve<S>(request_timeout: Duration, mut request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    mark_sensitive(request.headers_mut());
    let id = request_id::adopt(&mut request);
    let served = trace_context::Served::begin(&request);
    let span = request_id::span(&id, &request, &served.trace);
    let now = Instant::now();
    let observation = access::Observation::begin(&request, now);
    let budget = deadline::budget(&request);
    let limit = timeout::Limit::sooner(now, request_timeout, budget);

    let handled = call_catching_panics(inner, request);
    let handled = deadline::serve(budget.map(|b| now + b), handled);
    let handled = trace_context::scope(served.trace, limit.run(handled));
    // Problems are rendered with the request id, so inside its scope.
    let rendered = handled.map(problems::rewrite);
    let mut response = request_id::scope(id.clone(), rendered.instrument(span.clone())).await;

    request_id::echo(&id, &mut response);
    served.finish(&mut response);
    // The access log line belongs to the request's span, like every line before it.
    span.in_scope(|| observation.finish(&response));
    response
}

/// Marks the values of [`SENSITIVE_HEADERS`] so no log or debug output shows them.
/// One pass over the request's few headers, comparing names, costs less than a
/// hashed lookup of each sensitive name.
fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if SENSITIVE_HEADERS.contains(name) {
            value.set_sensitive(true);
        }
    }
}

/// Refuses a body declared larger than [`MAX_BODY_BYTES`] (413), and caps one of unknown
/// length (chunked) at it, so a handler reading or streaming it gets an error past the
/// limit. A body of declared length is left as it is: the server already holds it to
/// that length.
fn limit_body(request: Request) -> Result<Request, StatusCode> {
    match request.body().size_hint().upper() {
        Some(length) if length > MAX_BODY_BYTES as u64 => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Some(_) => Ok(request),
        None => Ok(request.map(|body| Body::new(Limited::new(body, MAX_BODY_BYTES)))),
    }
}

/// Calls `inner` with the body limited (413 past it), making a panic (in the call or in
/// its future) a 500 problem. The call is made now; the panic is reported when the
/// future is polled, so inside the request's scopes, like everything it logs.
fn call_catching_panics<S>(mut inner: S, request: Request) -> impl Future<Output = Response>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let answered = match limit_body(request) {
        Err(too_large) => Either::Left(future::ready(Ok(Ok(too_large.into_response())))),
        Ok(request) => match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
            Ok(future) => Either::Right(AssertUnwindSafe(future).catch_unwind()),
            Err(payload) => Either::Left(future::ready(Err(payload))),
        },
    };
    answered.map(|answered| match answered {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(payload) => problems::from_panic(payload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// Every request's future is moved into a box whole, so its size is paid per request:
    /// wrapping the handler in `async` layers instead of plain futures made it 49 KB in
    /// the gateway. Around this small router it is about 1.4 KB; one scope written as an
    /// `async fn` again makes it 2 KB.
    #[tokio::test]
    async fn the_stacks_future_stays_small() {
        let router: Router = Router::new().route("/", get(|| async { "ok" }));
        let mut stack = StackLayer {
            request_timeout: Duration::from_secs(5),
        }
        .layer(router);
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let future = stack.call(request);
        let size = std::mem::size_of_val(&*future);
        assert!(size <= 1600, "the stack's future is {size} bytes");
        let Ok(response) = future.await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}
