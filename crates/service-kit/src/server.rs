//! Running a service: an HTTP server on a bound listener plus its background tasks, all
//! stopped together.
//!
//! The listener is bound by the caller so tests can bind port 0 and read the address
//! before the first request. On shutdown (SIGTERM/SIGINT in a binary, [`RunningServer::stop`]
//! in a test) the server stops accepting, in-flight requests get up to the shutdown
//! timeout to finish, and background tasks are cancelled and awaited within the same
//! budget.
//!
//! Connections are served by axum's server ([`Server::new`]), or by whatever a service
//! brings of its own ([`Server::with_connections`]: the gateway's HTTP/1.1 workers).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::serve::ListenerExt;
use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{HttpConfig, Secret};
use crate::internal_auth::{ServiceKey, require_service_key};
use crate::ops::Readiness;
use crate::start::StartError;

/// Serves the connections a listener accepts until the token is cancelled, then drains
/// them and returns.
type ServeConnections =
    Box<dyn FnOnce(TcpListener, CancellationToken) -> BoxFuture<'static, io::Result<()>> + Send>;

/// A service ready to run: its listener, what serves the listener's connections, and
/// the background tasks that live and stop with it.
pub struct Server {
    listener: TcpListener,
    serve: ServeConnections,
    shutdown_timeout: Duration,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
        TcpListener::bind(addr)
            .await
            .map_err(|cause| StartError::Listen { addr, cause })
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
    ) -> Result<Self, StartError> {
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

    /// `router` on axum's server, with the peer address as `ConnectInfo` and
    /// TCP_NODELAY on every connection (answers leave as soon as they are written).
    pub fn new(listener: TcpListener, router: Router, shutdown_timeout: Duration) -> Self {
        Self::with_connections(listener, shutdown_timeout, move |listener, stop| {
            let listener = listener.tap_io(|stream: &mut TcpStream| {
                let _ = stream.set_nodelay(true);
            });
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
        })
    }

    /// A service that serves its listener's connections itself: `serve` accepts until
    /// its token is cancelled, then lets the requests in flight finish and returns.
    pub fn with_connections<F, Fut>(
        listener: TcpListener,
        shutdown_timeout: Duration,
        serve: F,
    ) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        Self {
            listener,
            serve: Box::new(move |listener, stop| Box::pin(serve(listener, stop))),
            shutdown_timeout,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
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
    ) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let stop_accepting = CancellationToken::new();
        let mut serve = (self.serve)(self.listener, stop_accepting.clone());
        tracing::info!(addr = %addr, "listening");

        tokio::select! {
            result = &mut serve => result.map_err(ServeError::Serve)?,
            () = shutdown => {
                tracing::info!(
                    timeout_s = self.shutdown_timeout.as_secs(),
                    "shutting down: draining in-flight requests"
                );
                stop_accepting.cancel();
                self.cancel.cancel();
                let deadline = Instant::now() + self.shutdown_timeout;
                match tokio::time::timeout_at(deadline, &mut serve).await {
                    Ok(result) => result.map_err(ServeError::Serve)?,
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

    /// Runs in the background until [`RunningServer::stop`]; for tests.
    pub fn spawn(self) -> RunningServer {
        let addr = self.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(self.run_until(async move {
            let _ = stopped.await;
        }));
        RunningServer {
            addr,
            stop: Some(stop),
            handle,
        }
    }
}

/// Why a server stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("server failed")]
    Serve(#[source] io::Error),
    #[error("server task panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// A service running in the background of a test.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Shuts down gracefully and waits until it has stopped.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.map_err(ServeError::Panicked)?
    }
}

impl Drop for RunningServer {
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
