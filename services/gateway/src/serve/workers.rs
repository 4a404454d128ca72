//! Serving HTTP on worker threads, each running a single-threaded runtime of its own:
//! the model of nginx and actix-web, for a service whose requests are short and many
//! (the gateway).
//!
//! On tokio's work-stealing runtime a request's task, its connection's task and the
//! task of the upstream connection it is forwarded on can each run on any thread, so
//! one request wakes threads up across cores (futex calls, cache misses). Here the
//! listener is accepted on the service's own runtime and each connection is handed,
//! in turn, to one worker for its whole life; everything the worker's service starts
//! (its own upstream connection pool, say) stays on that thread. Keep-alive
//! connections carry many requests, so the hand-over is paid once per connection.
//!
//! Shutdown is the server's: the workers stop accepting when told, drain their
//! connections, and are abandoned (their runtimes dropped) if the caller stops
//! waiting.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::incoming::{Handed, Handover, Incoming, ServeIncoming};

/// Accepts on `listener` until `stop`, handing connections to `count` workers in turn,
/// each serving them with `serve`; returns once every worker has drained.
pub(crate) async fn serve(
    listener: TcpListener,
    count: usize,
    serve: ServeIncoming,
    stop: CancellationToken,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    // Dropped with this future (the drain took too long): the workers stop at once.
    let abandon = CancellationToken::new();
    let _abandon_when_dropped = abandon.clone().drop_guard();
    let mut queues = Vec::with_capacity(count);
    let mut finished = Vec::with_capacity(count);
    for index in 0..count.max(1) {
        let (queue, handed) = mpsc::unbounded_channel::<Handover>();
        let (done, worker_finished) = oneshot::channel();
        let serve = serve.clone();
        let (stop, abandon) = (stop.clone(), abandon.clone());
        std::thread::Builder::new()
            .name(format!("http-worker-{index}"))
            .spawn(move || {
                let _ = done.send(run_worker(addr, handed, &serve, stop, abandon));
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

/// One worker: its runtime, what it serves, the connections handed to it.
fn run_worker(
    addr: SocketAddr,
    handed: mpsc::UnboundedReceiver<Handover>,
    serve: &ServeIncoming,
    stop: CancellationToken,
    abandon: CancellationToken,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Made here, so everything it makes belongs to this worker's runtime.
        let serving = serve(Incoming::Handed(Handed { handed, addr }), stop);
        tokio::select! {
            result = serving => result,
            () = abandon.cancelled() => Ok(()),
        }
    })
}
