//! The service-kit's middleware ([`service_kit::middleware`]) fused into one tower
//! service around the gateway's dispatch.
//!
//! It does what the kit's stack of layers does, in one future: the sensitive headers
//! marked, the request observed ([`middleware::observe`]: request id, trace, access
//! log and metrics, time limit, problem+json), the body limited, a panic made a 500.
//! One service rather than a layer per concern because each layer wraps the request's
//! future in one of its own, and axum's `from_fn` layers also box it and clone the
//! stack below per request (what that cost: docs/bench-gateway.md).

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::{self, BoxFuture, Either};
use http_body_util::Limited;
use service_kit::middleware::{self, MAX_BODY_BYTES, SENSITIVE_HEADERS, problems};
use tower::{Layer, Service};

/// The route a response belongs to, set by the proxy (which routes by itself): labels
/// its metrics and names its span as a router's template would. Always a fixed string,
/// never the raw path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(pub &'static str);

/// The route `response` was served by: the proxy's [`RouteLabel`], or the ops router's
/// template.
fn route_of(response: &Response) -> Option<&str> {
    let extensions = response.extensions();
    extensions
        .get::<RouteLabel>()
        .map(|label| label.0)
        .or_else(|| extensions.get::<MatchedPath>().map(MatchedPath::as_str))
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

/// The kit's middleware around `inner`, in one service.
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
        let mut request = request;
        mark_sensitive(request.headers_mut());
        let handle = move |request| call_catching_panics(inner, request);
        Box::pin(middleware::observe(self.request_timeout, request, handle, route_of).map(Ok))
    }
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
    use axum::Router;
    use axum::routing::get;

    /// Every request's future is moved into a box whole, so its size is paid per request:
    /// wrapping the handler in `async` layers instead of plain futures made it many times
    /// larger (docs/bench-gateway.md). One scope written as an `async fn` again passes
    /// the bound.
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
