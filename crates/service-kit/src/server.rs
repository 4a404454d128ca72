//! Running a service: an HTTP server on a bound listener plus its background tasks, all
//! stopped together.
//!
//! The listener is bound by the caller so tests can bind port 0 and read the address
//! before the first request. On shutdown (SIGTERM/SIGINT in a binary, [`RunningService::stop`]
//! in a test) the server stops accepting, in-flight requests get up to the shutdown
//! timeout to finish, and background tasks are cancelled and awaited within the same
//! budget.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener, ListenerExt, TapIo};
use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod workers;

use crate::config::{HttpConfig, Secret};
use crate::internal_auth::{ServiceKey, require_service_key};
use crate::ops::Readiness;

/// A service ready to run: listener, what serves its connections, background tasks.
pub struct Service {
    listener: TcpListener,
    serve: ServeConnections,
    /// When not 0, requests are served on that many worker threads instead of the
    /// caller's runtime.
    workers: usize,
    shutdown_timeout: Duration,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Service {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))
    }

    /// The standard service: `api` behind this service's `key`, the ops routes beside
    /// it, the shared middleware around both, listening where `http` says (or on
    /// `default_port`).
    pub async fn build(
        http: &HttpConfig,
        default_port: u16,
        api: Router,
        key: &Secret,
        readiness: Readiness,
    ) -> anyhow::Result<Self> {
        let api = api.route_layer(from_fn_with_state(
            ServiceKey::new(key),
            require_service_key,
        ));
        let router = crate::middleware::apply(
            Router::new()
                .merge(api)
                .merge(crate::ops::router(readiness)),
            http.request_timeout(),
        );
        let listener = Self::bind(http.listen_addr(default_port)).await?;
        Ok(Self::new(listener, router, http.shutdown_timeout()))
    }

    pub fn new(listener: TcpListener, router: Router, shutdown_timeout: Duration) -> Self {
        Self::serving(
            listener,
            serve_router(move || router.clone()),
            0,
            shutdown_timeout,
        )
    }

    /// Serves each connection with its own service, made from the connection's peer
    /// address by a maker that `make` makes on each thread that serves (`workers` of
    /// them, each with a runtime of its own; 0 serves on the caller's runtime), over
    /// HTTP/1.1 ([`serve_each`]).
    ///
    /// For a service that needs the peer on every request without a lookup: a
    /// router's `ConnectInfo` is an extension allocated on every request, and a
    /// router's dispatch is work a service doing its own routing does not need.
    /// The service must always be ready (as routers and the middleware [`Stack`] are):
    /// it is called without asking.
    ///
    /// [`Stack`]: crate::middleware::Stack
    pub fn per_connection<M, F, S>(
        listener: TcpListener,
        workers: usize,
        make: M,
        shutdown_timeout: Duration,
    ) -> Self
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: FnMut(SocketAddr) -> S + Send + 'static,
        S: tower::Service<Request, Response = Response, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let serve: ServeConnections =
            Arc::new(move |connections, stop| Box::pin(serve_each(connections, make(), stop)));
        Self::serving(listener, serve, workers, shutdown_timeout)
    }

    fn serving(
        listener: TcpListener,
        serve: ServeConnections,
        workers: usize,
        shutdown_timeout: Duration,
    ) -> Self {
        Self {
            listener,
            serve,
            workers,
            shutdown_timeout,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Serves on `count` threads of their own, each running a single-threaded runtime
    /// and the router `make_router` makes on it ([`workers`]); 0 serves on the
    /// caller's runtime with one router from `make_router`.
    #[must_use]
    pub fn with_workers(
        mut self,
        count: usize,
        make_router: impl Fn() -> Router + Send + Sync + 'static,
    ) -> Self {
        self.serve = serve_router(make_router);
        self.workers = count;
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Starts a background task (a consumer, a relay) that runs until the service stops.
    /// The task gets a token that is cancelled at shutdown; it should then finish its
    /// current work and return.
    pub fn spawn_task<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let future = task(self.cancel.child_token());
        self.tasks.spawn(async move {
            future.await;
            tracing::debug!(task = name, "background task stopped");
        });
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let stop_accepting = CancellationToken::new();
        let mut serve: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
            match self.workers {
                0 => (self.serve)(Connections::Listener(self.listener), stop_accepting.clone()),
                count => Box::pin(workers::serve(
                    self.listener,
                    count,
                    self.serve,
                    stop_accepting.clone(),
                )),
            };
        tracing::info!(addr = %addr, "listening");

        tokio::select! {
            result = &mut serve => result.context("server failed")?,
            () = shutdown => {
                tracing::info!(
                    timeout_s = self.shutdown_timeout.as_secs(),
                    "shutting down: draining in-flight requests"
                );
                stop_accepting.cancel();
                self.cancel.cancel();
                let deadline = Instant::now() + self.shutdown_timeout;
                match tokio::time::timeout_at(deadline, &mut serve).await {
                    Ok(result) => result.context("server failed")?,
                    Err(_) => tracing::warn!("drain timed out; dropping open connections"),
                }
                self.tasks.close();
                if tokio::time::timeout_at(deadline, self.tasks.wait()).await.is_err() {
                    tracing::warn!("background tasks did not stop in time");
                }
            }
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Runs in the background until [`RunningService::stop`]; for tests.
    pub fn spawn(self) -> RunningService {
        let addr = self.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(self.run_until(async move {
            let _ = stopped.await;
        }));
        RunningService {
            addr,
            stop: Some(stop),
            handle,
        }
    }
}

/// A service running in the background of a test.
pub struct RunningService {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningService {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Shuts down gracefully and waits until it has stopped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.context("server task panicked")?
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.handle.abort();
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// A service binary's `main` after parsing its settings: starts logging as `name`, runs
/// `work`, and turns its outcome into the exit code (2 when logging cannot start, 1 when
/// `work` fails, after logging why).
pub async fn main(
    name: &'static str,
    telemetry: &crate::config::TelemetryConfig,
    work: impl Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    if let Err(error) = crate::telemetry::init(name, telemetry) {
        eprintln!("error: {error:#}");
        return std::process::ExitCode::from(2);
    }
    let result = work.await;
    crate::otel::shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{name}-service failed");
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves the connections from one source until the token is cancelled, then drains
/// them: a router behind axum's server, or per-connection services on hyper's HTTP/1.1
/// connections ([`serve_each`]), made anew for each thread that calls it.
type ServeConnections =
    Arc<dyn Fn(Connections, CancellationToken) -> BoxFuture<'static, io::Result<()>> + Send + Sync>;

/// Serves the router `make_router` makes, with the peer address as `ConnectInfo`.
fn serve_router(make_router: impl Fn() -> Router + Send + Sync + 'static) -> ServeConnections {
    Arc::new(move |connections, stop| {
        let make_service = make_router().into_make_service_with_connect_info::<SocketAddr>();
        serve_until(connections, make_service, stop)
    })
}

/// The accepted connections, each with TCP_NODELAY set.
type NoDelay = TapIo<Connections, fn(&mut TcpStream)>;

/// axum's server on `connections`, each served by what `make_service` makes for it,
/// until `stop`; then it drains them.
fn serve_until<M, S>(
    connections: Connections,
    make_service: M,
    stop: CancellationToken,
) -> BoxFuture<'static, io::Result<()>>
where
    M: for<'a> tower::Service<IncomingStream<'a, NoDelay>, Error = Infallible, Response = S>
        + Send
        + 'static,
    for<'a> <M as tower::Service<IncomingStream<'a, NoDelay>>>::Future: Send,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let connections: NoDelay = connections.tap_io(no_delay);
    Box::pin(
        axum::serve(connections, make_service)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future(),
    )
}

/// Serves each connection from `connections` over HTTP/1.1 with the service `make`
/// makes from its peer address, until `stop`; then stops accepting, lets each open
/// connection finish the request in flight, and returns once all are closed.
///
/// hyper's HTTP/1.1 connection rather than axum's server, which on every request clones
/// the service it was given and asks whether it is ready, and reads every connection
/// through a wrapper that looks for HTTP/2's preface; the services served here are
/// ready by construction, and the gateway, the one service served this way, speaks
/// HTTP/1.1 to its clients and its services.
///
/// A connection with no request begun and none being answered for
/// [`QUIET_CONNECTION_TIMEOUT`] is closed: a client trickling a request's head, or a
/// keep-alive connection left idle. (hyper's own header-read timeout does the same
/// with a timer reset on every request, 3 % of the gateway's instructions per proxied
/// request; this one looks at two counters twice a minute.)
async fn serve_each<F, S>(
    mut connections: Connections,
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
    // An answer's head and body copied into one buffer and sent with one plain write:
    // its answers are small (the gateway's proxied JSON), and two-part vectored writes
    // cost the kernel more than the copy (docs/bench-gateway.md: about 5 % more
    // proxied requests a second). A large body is still sent in buffer-sized writes.
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

/// How long a connection of [`Service::per_connection`] may go without a request
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
    type Future = Answer<S::Future>;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        // Looked up only for a request with a body: most have none.
        let drain = hyper::body::Body::is_end_stream(request.body())
            || !request.headers().contains_key(http::header::EXPECT);
        Answer {
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
    struct Answer<F> {
        answering: Option<Answering>,
        #[pin]
        future: F,
    }
}

impl<F> Future for Answer<F>
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

/// Where connections come from: the bound listener itself, or (on a worker thread) the
/// connections handed to the worker.
pub(crate) enum Connections {
    Listener(TcpListener),
    Handed(workers::Handed),
}

impl Listener for Connections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self {
            Self::Listener(listener) => Listener::accept(listener).await,
            Self::Handed(handed) => handed.accept().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Listener(listener) => Listener::local_addr(listener),
            Self::Handed(handed) => Ok(handed.addr),
        }
    }
}

/// Sets TCP_NODELAY on an accepted connection: responses leave as soon as they are
/// written, not after the next ACK.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}
