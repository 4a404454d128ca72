//! Where a serving thread's connections come from: the listener itself, or the
//! connections a worker is handed ([`super::workers`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::Listener;
use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serves the connections from one source until the token is cancelled, then drains
/// them; made anew on each thread that calls it.
pub(crate) type ServeIncoming =
    Arc<dyn Fn(Incoming, CancellationToken) -> BoxFuture<'static, io::Result<()>> + Send + Sync>;

/// A connection accepted on the service's runtime, on its way to a worker.
pub(crate) type Handover = (std::net::TcpStream, SocketAddr);

/// Where connections come from: the bound listener itself, or (on a worker thread) the
/// connections handed to the worker.
pub(crate) enum Incoming {
    Listener(TcpListener),
    Handed(Handed),
}

impl Listener for Incoming {
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

/// The connections handed to one worker.
pub(crate) struct Handed {
    pub(crate) handed: mpsc::UnboundedReceiver<Handover>,
    /// The address the service listens on.
    pub(crate) addr: SocketAddr,
}

impl Handed {
    /// The next connection, registered with the calling worker's runtime; pending
    /// forever once no more come (the shutdown signal then ends the server).
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr) {
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
}
