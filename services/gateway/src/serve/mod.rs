//! The gateway's HTTP/1.1 server: each connection served by a service of its own, made
//! from the connection's peer address, on worker threads ([`workers`]).
//!
//! hyper's HTTP/1.1 connection rather than axum's server, which on every request clones
//! the service it was given and asks whether it is ready, and reads every connection
//! through a wrapper that looks for HTTP/2's preface; the gateway's services are ready
//! by construction and speak HTTP/1.1 to clients and services alike. The peer comes
//! with the connection, so no request pays for a `ConnectInfo` extension.
//!
//! - [`per_connection`]: the [`Server`] that serves this way.
//! - [`stack`]: the service-kit's middleware fused into one service around the
//!   gateway's dispatch.
//! - [`workers`]: one single-threaded runtime per worker thread.

mod incoming;
pub mod stack;
pub mod workers;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener;
use service_kit::server::Server;
use tokio::net::TcpListener;

use incoming::{Incoming, ServeIncoming};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves each connection with its own service, made from the connection's peer
/// address by a maker that `make` makes on each thread that serves (`workers` of
/// them, each with a runtime of its own; 0 serves on the caller's runtime).
///
/// The service must always be ready (as routers and the [`stack::Stack`] are): it is
/// called without asking.
pub fn per_connection<M, F, S>(
    listener: TcpListener,
    workers: usize,
    make: M,
    shutdown_timeout: Duration,
) -> Server
where
    M: Fn() -> F + Send + Sync + 'static,
    F: FnMut(SocketAddr) -> S + Send + 'static,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let serve: ServeIncoming =
        Arc::new(move |incoming, stop| Box::pin(serve_each(incoming, make(), stop)));
    Server::with_connections(
        listener,
        shutdown_timeout,
        move |listener, stop| async move {
            match workers {
                0 => serve(Incoming::Listener(listener), stop).await,
                count => workers::serve(listener, count, serve, stop).await,
            }
        },
    )
}

/// Serves each connection from `connections` over HTTP/1.1 with the service `make`
/// makes from its peer address, until `stop`; then stops accepting, lets each open
/// connection finish the request in flight, and returns once all are closed.
///
/// A connection with no request begun and none being answered for
/// [`QUIET_CONNECTION_TIMEOUT`] is closed: a client trickling a request's head, or a
/// keep-alive connection left idle. (hyper's own header-read timeout resets a timer on
/// every request, a cost docs/bench-gateway.md measures; this one looks at two counters
/// twice a minute.)
async fn serve_each<F, S>(
    mut connections: Incoming,
    mut make: F,
    stop: CancellationToken,
) -> io::Result<()>
where
    F: FnMut(SocketAddr) -> S,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    // This thread's own token: each connection waits on it, and a token shared with
    // the other threads would be a lock they all take on every wake-up.
    let stop = stop.child_token();
    let open = TaskTracker::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // An answer's head and body in one buffer and one plain write: the gateway's
    // answers are small, and two-part vectored writes cost the kernel more than the
    // copy (docs/bench-gateway.md).
    http1.writev(false);
    loop {
        let (mut stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = Listener::accept(&mut connections) => accepted,
        };
        no_delay(&mut stream);
        let activity = Arc::new(Activity::default());
        let connection = http1.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            AlwaysReady {
                service: make(peer),
                activity: activity.clone(),
            },
        );
        let stop = stop.clone();
        open.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut watchdog = std::pin::pin!(tokio::time::sleep(QUIET_CONNECTION_TIMEOUT));
            let mut begun = 0;
            let ended = loop {
                tokio::select! {
                    biased;
                    ended = connection.as_mut() => break ended,
                    () = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        break connection.await;
                    }
                    () = watchdog.as_mut() => {
                        let now_begun = activity.begun.load(Ordering::Relaxed);
                        if now_begun == begun && activity.answering.load(Ordering::Relaxed) == 0 {
                            tracing::debug!("no request on the connection in time: closed");
                            return;
                        }
                        begun = now_begun;
                        watchdog.as_mut().reset(Instant::now() + QUIET_CONNECTION_TIMEOUT);
                    }
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(connections);
    open.close();
    open.wait().await;
    Ok(())
}

/// How long a connection of [`per_connection`] may go without a request
/// begun or being answered: the time a client has to send a request's head, and how
/// long a keep-alive connection may sit idle (closed after 30 to 60 s).
pub const QUIET_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What one connection's requests have done, for its watchdog.
#[derive(Default)]
struct Activity {
    /// Requests whose head was read.
    begun: AtomicU64,
    /// Requests being handled or answered (their response's body not yet sent).
    answering: AtomicUsize,
}

/// Counts a request as being answered for as long as it lives.
struct Answering(Arc<Activity>);

impl Answering {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.begun.fetch_add(1, Ordering::Relaxed);
        activity.answering.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A tower service that is always ready, as hyper's: each request is handed to a
/// clone of it, its body boxed as axum's.
struct AlwaysReady<S> {
    service: S,
    activity: Arc<Activity>,
}

impl<S> hyper::service::Service<http::Request<hyper::body::Incoming>> for AlwaysReady<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = http::Response<Answered>;
    type Error = Infallible;
    type Future = Counted<S::Future>;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        // Looked up only for a request with a body: most have none.
        let drain = hyper::body::Body::is_end_stream(request.body())
            || !request.headers().contains_key(http::header::EXPECT);
        Counted {
            answering: Some(Answering::new(&self.activity)),
            future: self.service.clone().call(request.map(|incoming| {
                Body::new(Drained {
                    incoming: Some(incoming),
                    drain,
                })
            })),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's handling, counted as being answered until its response is sent.
    struct Counted<F> {
        answering: Option<Answering>,
        #[pin]
        future: F,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<http::Response<Answered>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.future.poll(cx));
        let answering = this.answering.take();
        Poll::Ready(Ok(response.map(|body| Answered {
            body,
            _answering: answering,
        })))
    }
}

/// A response's body, its request counted as being answered until it is dropped
/// (sent, or the connection gone).
struct Answered {
    body: Body,
    _answering: Option<Answering>,
}

impl hyper::body::Body for Answered {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        hyper::body::Body::poll_frame(Pin::new(&mut self.body), cx)
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}

/// Most of a request's body read after its answer, and for how long, to keep its
/// connection: the largest body a service accepts.
const DRAIN_LIMIT: u64 = 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A request's body that, dropped before its end (its request answered without it: a
/// 401, a 429, an open breaker), is read to its end by a task of its own. hyper closes
/// a connection whose request body was left unread, and a client still sending that
/// body then meets a reset, which can cost it the answer, or the next request it sends
/// on what it took for a live connection (RFC 9112 §9.6). Read while the answer goes
/// out, the body's end leaves the connection ready for the next request. Not for a
/// client waiting to be asked for its body (`Expect: 100-continue`): answered without
/// being asked, it sends no body, and its connection closes.
struct Drained {
    incoming: Option<hyper::body::Incoming>,
    drain: bool,
}

impl hyper::body::Body for Drained {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(incoming).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            // Ended or failed: nothing is left to read.
            self.incoming = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.incoming
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            hyper::body::Body::size_hint,
        )
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        if !self.drain || hyper::body::Body::is_end_stream(&incoming) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(incoming));
        }
    }
}

/// Reads `incoming` to its end and drops it, within [`DRAIN_LIMIT`] and
/// [`DRAIN_TIMEOUT`]; past either it is dropped as it is (and its connection closed).
async fn drain(mut incoming: hyper::body::Incoming) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut read = 0;
        while let Some(Ok(frame)) = incoming.frame().await {
            read += frame.data_ref().map_or(0, |data| data.len() as u64);
            if read > DRAIN_LIMIT {
                return;
            }
        }
    })
    .await;
}

/// Sets TCP_NODELAY on an accepted connection: responses leave as soon as they are
/// written, not after the next ACK.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}
