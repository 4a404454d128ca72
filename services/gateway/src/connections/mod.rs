//! One HTTP worker's connections to the services, and the HTTP/1.1 exchanges on them.
//!
//! A request is written, and its answer's head read, by the request's own task, on a
//! connection taken from a short list per service; the answer's body is read by
//! whoever polls it (the server, sending it on to the client), and when it ends the
//! connection goes back on its list. Nothing else runs: no task per connection, no
//! channel between a request and its connection. (hyper's connection-level client
//! drives each connection from a task of its own and passes requests and answers to it
//! through channels, which cost more than the exchange itself: docs/bench-gateway.md.)
//!
//! A worker's requests never leave its thread ([`crate::serve::workers`]), so
//! its connections need no shared pool: a service's list is found by its index, and its
//! lock is never contended.
//!
//! The exchange is HTTP/1.1 as RFC 9112 has it, for the gateway's own services: the
//! request framed by its body's known length, or chunked; the answer's body framed by
//! `Transfer-Encoding: chunked`, `Content-Length`, or the connection's end, and none for
//! a `HEAD` request, a 204 or a 304; informational (1xx) answers skipped. A request's
//! body is written while the connection is watched, so a service answering before it
//! read the whole body (a 413, say) is heard. A connection is reused only when its
//! answer was read exactly to its end, says nothing of closing, and the request was
//! written whole; an answer that cannot be framed is a failure, never guessed at. An
//! answer comes without its connection's own headers (the hop-by-hop ones and those its
//! `Connection` names): they are read here and stay here.
//!
//! A connection the service closed while it sat idle is noticed when taken (it reads
//! as ready); one closed just as a request went out yields no answer at all, and a
//! request without a body whose method is idempotent then goes once more, on a new
//! connection. Connections idle longer than [`IDLE_TIMEOUT`] are closed when next
//! seen, and a list keeps at most [`MAX_IDLE`].
//!
//! # Layout
//!
//! - [`Connections`] (here): a worker's lists, one per service, and sending a request.
//! - `list`: one service's idle connections and the count of those in use;
//!   `connection`: one open connection and its read buffer.
//! - [`Head`]: a request's head, written as it is built.
//! - `exchange`: one request and its answer on a connection; `answer`: reading an
//!   answer's head and body from bytes, with no I/O of its own.
//! - [`ConnectionOptions`]: what `Connection` headers say; [`Failure`]: how a request
//!   fails.
mod answer;
mod connection;
mod exchange;
mod failure;
mod head;
mod list;
mod options;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Response;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use connection::Connection;
use exchange::exchange;
use failure::Failed;
use head::Outgoing;
use list::{List, take};

pub use failure::Failure;
pub use head::Head;
pub use list::{IDLE_TIMEOUT, MAX_IDLE};
pub use options::{ConnectionOptions, HOP_BY_HOP};

/// Most connections open at once per service and worker: a request past it waits for
/// one to come free (or for the server's time limit). Counted as connections in use:
/// a new one opens only when none is idle, so those idle came from those in use.
pub const MAX_OPEN: usize = 512;

/// Where one service listens.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Its place in [`Connections`]' lists.
    pub index: usize,
    /// `host:port`, to connect to.
    pub address: String,
}

/// How long a service may take to accept a connection, and how many it gets. (How long
/// it may take to answer is the request's time limit, the server's: a timer of the
/// exchange's own is a cost docs/bench-gateway.md measures.)
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To accept a connection.
    pub connect_timeout: Duration,
    /// Connections open at once, per service and worker.
    pub max_open: usize,
}

/// One worker's connections, a list per service.
pub struct Connections {
    limits: Limits,
    lists: Vec<Arc<List>>,
}

impl Connections {
    /// Lists for `services` services.
    pub fn new(services: usize, limits: Limits) -> Self {
        Self {
            limits,
            lists: (0..services)
                .map(|_| Arc::new(List::new(limits.max_open)))
                .collect(),
        }
    }

    /// Sends the request `head` (its `Host` among its headers) with `body` to
    /// `destination` and returns the answer's head, its body streaming behind it.
    pub async fn send(
        &self,
        destination: &Destination,
        head: Head,
        body: Body,
    ) -> Result<Response<Body>, Failure> {
        let Some(list) = self.lists.get(destination.index) else {
            return Err(Failure::Connect {
                address: destination.address.clone(),
                error: io::Error::other("no such service"),
            });
        };
        let framing = Outgoing::of(&body);
        // Sent again on a new connection when a reused one closed before answering:
        // only what can be sent twice without harm.
        let replayable = framing == Outgoing::Empty && head.idempotent;
        let head_only = head.head_only;
        let head = head.finish(framing);
        let mut body = (framing != Outgoing::Empty).then_some((body, framing));

        let place = list.place().await?;
        if let Some(mut connection) = take(list) {
            connection.in_use = Some(place);
            match exchange(list, connection, &head, body.take(), head_only).await {
                Ok(response) => return Ok(response),
                Err(Failed::Unanswered(_)) if replayable => {}
                Err(Failed::Unanswered(failure) | Failed::Other(failure)) => return Err(failure),
            }
        }
        // Boxed: connecting makes a large future, and unboxed it would size (and be
        // copied with) every request's, most of which find a connection waiting.
        let place = list.place().await?;
        let connection = Box::pin(self.connect(destination, place)).await?;
        exchange(list, connection, &head, body, head_only)
            .await
            .map_err(|(Failed::Unanswered(failure) | Failed::Other(failure))| failure)
    }

    /// A new connection to `destination`, in use in `place`.
    async fn connect(
        &self,
        destination: &Destination,
        place: OwnedSemaphorePermit,
    ) -> Result<Connection, Failure> {
        let failed = |error: io::Error| Failure::Connect {
            address: destination.address.clone(),
            error,
        };
        let stream = tokio::time::timeout(
            self.limits.connect_timeout,
            TcpStream::connect(destination.address.as_str()),
        )
        .await
        .map_err(|_| failed(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
        .map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        Ok(Connection::new(stream, place))
    }
}
