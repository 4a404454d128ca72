//! One HTTP worker's connections to the services: HTTP/1.1 over hyper's
//! connection-level client, a short list per service.
//!
//! A worker's requests never leave its thread ([`service_kit::server::workers`]), so
//! its connections need no shared pool: hyper-util's pooled client keeps one behind a
//! mutex, keyed by scheme and authority and hashed twice per request, which cost
//! about a sixth of the proxy's CPU. Here a service's connections are found by its
//! index in a list of a few.
//!
//! A connection goes back on its list as soon as the response's head arrives; it is
//! taken again only once it is ready for the next request (its response read to the
//! end). A connection the service closed while it sat idle shows up only on use: the
//! request then comes back unsent and goes once more, on a new connection. Connections
//! idle longer than [`IDLE_TIMEOUT`] are closed when next seen, and a list keeps at most
//! [`MAX_IDLE`].

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a connection may sit unused before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most connections kept per service and worker.
pub const MAX_IDLE: usize = 256;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection could be made: the service is down or unreachable.
    #[error("could not connect to {address}: {error}")]
    Connect { address: String, error: io::Error },
    /// The exchange failed on a connection (the service failed, or the request's
    /// body did).
    #[error(transparent)]
    Exchange(#[from] hyper::Error),
}

/// Where one service listens.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Its place in [`Connections`]' lists.
    pub index: usize,
    /// `host:port`, to connect to.
    pub address: String,
}

/// A connection and since when it is back on its list.
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// One worker's connections, a list per service.
pub struct Connections {
    connect_timeout: Duration,
    lists: Vec<Mutex<Vec<Idle>>>,
}

impl Connections {
    /// Lists for `services` services, connecting within `connect_timeout`.
    pub fn new(services: usize, connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            lists: (0..services).map(|_| Mutex::default()).collect(),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `destination` and returns the
    /// response's head, its body streaming behind it.
    pub async fn send(
        &self,
        destination: &Destination,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, Failure> {
        let request = match self.take(destination.index) {
            Some(sender) => match self.exchange(destination, sender, request).await {
                Ok(response) => return Ok(response),
                // Closed while idle, before anything was written: once more, below.
                Err(Retry::Unsent(request)) => *request,
                Err(Retry::Failed(error)) => return Err(error.into()),
            },
            None => request,
        };
        // Boxed: connecting makes a large future, and unboxed it would size (and be
        // copied with) every request's, most of which find a connection waiting.
        let sender = Box::pin(self.connect(destination)).await?;
        match self.exchange(destination, sender, request).await {
            Ok(response) => Ok(response),
            Err(Retry::Failed(error)) => Err(error.into()),
            Err(Retry::Unsent(_)) => Err(Failure::Connect {
                address: destination.address.clone(),
                error: io::Error::new(io::ErrorKind::ConnectionReset, "closed on arrival"),
            }),
        }
    }

    /// One request on `sender`, which goes back on its list when it is answered.
    async fn exchange(
        &self,
        destination: &Destination,
        mut sender: SendRequest<Body>,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, Retry> {
        match sender.try_send_request(request).await {
            Ok(response) => {
                self.give_back(destination.index, sender);
                Ok(response)
            }
            Err(mut error) => match error.take_message() {
                Some(request) => Err(Retry::Unsent(Box::new(request))),
                None => Err(Retry::Failed(error.into_error())),
            },
        }
    }

    /// A connection of the service's that is ready for a request, if any; drops those
    /// that are closed or were idle too long on the way.
    fn take(&self, index: usize) -> Option<SendRequest<Body>> {
        let mut list = self.list(index)?;
        let now = Instant::now();
        // A busy connection's `since` is when its answer began: it is not idle.
        let stale = |idle: &Idle| idle.sender.is_ready() && now - idle.since > IDLE_TIMEOUT;
        list.retain(|idle| !idle.sender.is_closed() && !stale(idle));
        let ready = list.iter().rposition(|idle| idle.sender.is_ready())?;
        Some(list.swap_remove(ready).sender)
    }

    fn give_back(&self, index: usize, sender: SendRequest<Body>) {
        if let Some(mut list) = self.list(index)
            && list.len() < MAX_IDLE
        {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn list(&self, index: usize) -> Option<std::sync::MutexGuard<'_, Vec<Idle>>> {
        let list = self.lists.get(index)?;
        Some(list.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A new connection to `destination`, its driving task spawned on this worker.
    async fn connect(&self, destination: &Destination) -> Result<SendRequest<Body>, Failure> {
        let failed = |error: io::Error| Failure::Connect {
            address: destination.address.clone(),
            error,
        };
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(destination.address.as_str()),
        )
        .await
        .map_err(|_| failed(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
        .map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Failure::Exchange)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        sender.ready().await?;
        Ok(sender)
    }
}

/// How one exchange ended, when not with a response.
enum Retry {
    /// Nothing was written: the request can go on another connection.
    Unsent(Box<Request<Body>>),
    Failed(hyper::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A service answering `ok` after `delay`, counting the connections it accepted.
    async fn service(delay: Duration) -> (Destination, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let answer = service_fn(move |_request| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        (Destination { index: 0, address }, accepted)
    }

    fn request() -> Request<Body> {
        Request::builder()
            .uri("/x")
            .header("host", "test")
            .body(Body::empty())
            .unwrap()
    }

    async fn ok(response: Result<Response<Incoming>, Failure>) {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn requests_in_turn_share_one_connection_and_concurrent_ones_open_their_own() {
        let (destination, accepted) = service(Duration::from_millis(20)).await;
        let connections = Connections::new(1, Duration::from_secs(1));

        for _ in 0..10 {
            ok(connections.send(&destination, request()).await).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let racing =
            (0..8).map(|_| async { ok(connections.send(&destination, request()).await).await });
        futures::future::join_all(racing).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            8,
            "the one idle connection is reused, seven more are opened"
        );

        for _ in 0..10 {
            ok(connections.send(&destination, request()).await).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8, "all eight are kept");
    }

    #[tokio::test]
    async fn a_connection_the_service_closed_is_not_reused() {
        // Answers one request per connection, then closes it without saying so.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        let destination = Destination { index: 0, address };
        let connections = Connections::new(1, Duration::from_secs(1));

        for _ in 0..5 {
            ok(connections.send(&destination, request()).await).await;
        }
    }

    #[tokio::test]
    async fn a_service_that_does_not_listen_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let connections = Connections::new(1, Duration::from_secs(1));

        let failed = connections
            .send(&Destination { index: 0, address }, request())
            .await;
        assert!(matches!(failed, Err(Failure::Connect { .. })), "{failed:?}");
    }
}
