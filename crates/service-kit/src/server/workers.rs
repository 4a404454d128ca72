//! Serving HTTP on worker threads, each running a single-threaded runtime of its own:
//! the model of nginx and actix-web, for a service whose requests are short and many
//! (the gateway).
//!
//! On tokio's work-stealing runtime a request's task, its connection's task and the
//! task of the upstream connection it is forwarded on can each run on any thread, so
//! one request wakes threads up across cores (futex calls, cache misses). Here the
//! listener is accepted on the service's own runtime and each connection is handed,
//! in turn, to one worker for its whole life; everything the worker's router starts
//! (its own upstream connection pool, say) stays on that thread. Keep-alive
//! connections carry many requests, so the hand-over is paid once per connection.
//!
//! Shutdown is the server's: the workers stop accepting when told, drain their
//! connections, and are abandoned (their runtimes dropped) if the caller stops
//! waiting.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Makes a router for one worker; called once on each worker's thread.
pub type MakeRouter = Arc<dyn Fn() -> Router + Send + Sync>;

/// How many workers, and the router each one serves.
#[derive(Clone)]
pub struct Workers {
    pub count: usize,
    pub make_router: MakeRouter,
}

/// A connection accepted on the service's runtime, on its way to a worker.
type Handover = (std::net::TcpStream, SocketAddr);

/// Accepts on `listener` until `stop`, handing connections to the workers in turn;
/// returns once every worker has drained.
pub(super) async fn serve(
    listener: TcpListener,
    workers: Workers,
    stop: CancellationToken,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    // Dropped with this future (the drain took too long): the workers stop at once.
    let abandon = CancellationToken::new();
    let _abandon_when_dropped = abandon.clone().drop_guard();
    let mut queues = Vec::with_capacity(workers.count);
    let mut finished = Vec::with_capacity(workers.count);
    for index in 0..workers.count.max(1) {
        let (queue, handed) = mpsc::unbounded_channel::<Handover>();
        let (done, worker_finished) = oneshot::channel();
        let make_router = workers.make_router.clone();
        let (stop, abandon) = (stop.clone(), abandon.clone());
        std::thread::Builder::new()
            .name(format!("http-worker-{index}"))
            .spawn(move || {
                let _ = done.send(run_worker(addr, handed, &make_router, stop, abandon));
            })?;
        queues.push(queue);
        finished.push(worker_finished);
    }

    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer))) {
            Ok(handover) => {
                if queues[next].send(handover).is_err() {
                    // Its thread failed (its error is returned below); the
                    // connection closes.
                    tracing::error!(worker = next, "an HTTP worker is gone");
                }
                next = (next + 1) % queues.len();
            }
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(queues);
    for worker in finished {
        match worker.await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("an HTTP worker thread panicked")),
        }
    }
    Ok(())
}

/// One worker: its runtime, its router, the connections handed to it.
fn run_worker(
    addr: SocketAddr,
    handed: mpsc::UnboundedReceiver<Handover>,
    make_router: &MakeRouter,
    stop: CancellationToken,
    abandon: CancellationToken,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = Handed { handed, addr }.tap_io(super::no_delay);
        let router = make_router();
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned());
        tokio::select! {
            result = serve.into_future() => result,
            () = abandon.cancelled() => Ok(()),
        }
    })
}

/// The connections handed to one worker, as a listener for `axum::serve`.
struct Handed {
    handed: mpsc::UnboundedReceiver<Handover>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.handed.recv().await else {
                // No more connections come; the shutdown signal ends the server.
                std::future::pending::<()>().await;
                continue;
            };
            // Registers the socket with this worker's runtime.
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(error) => tracing::warn!(%error, "could not take over a connection"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
