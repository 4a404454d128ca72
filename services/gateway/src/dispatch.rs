//! Each client connection's service: the ops routes (health, readiness, metrics) to
//! their router, the console's static page to [`console::assets`], every other request
//! to the proxy's handler, with the connection's peer address at hand.
//!
//! The gateway routes by its own table ([`crate::routes`]), so a router in front of the
//! handler would only add work to every request: its dispatch, a boxed route service
//! cloned per call, and the peer address put into (and taken out of) an extensions map
//! allocated per request. Here the peer is a field, set once per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use tower::Service;
use tower::util::{Oneshot, ServiceExt};

use crate::console;
use crate::proxy;
use crate::state::AppState;

/// Serves one connection's requests.
#[derive(Clone)]
pub struct Dispatch {
    pub worker: AppState,
    /// [`service_kit::ops::router`], prepared for the stack.
    pub ops: Router,
    /// The connection's peer: the client, or the proxy in front of the gateway.
    pub peer: SocketAddr,
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<BoxFuture<'static, Result<Response, Infallible>>, Oneshot<Router, Request>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if service_kit::ops::PATHS.contains(&request.uri().path()) {
            Either::Right(self.ops.clone().oneshot(request))
        } else if console::assets::is_console(request.uri().path()) {
            let page = console::assets::serve(request.uri().path());
            Either::Left(futures::future::ready(Ok(page)).boxed())
        } else {
            let handled = proxy::handle(self.worker.clone(), self.peer, request);
            Either::Left(handled.map(Ok).boxed())
        }
    }
}
