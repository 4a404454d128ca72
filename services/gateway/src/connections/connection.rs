//! One open connection to a service and the bytes read from it but not yet used.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// How much is read from a connection at a time.
const READ_SIZE: usize = 16 * 1024;

/// An open connection, and what was read from it but not yet used.
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) buffer: BytesMut,
    /// When it went back on its list.
    pub(super) since: Instant,
    /// Its place among the service's `max_open`, while it is in use.
    pub(super) in_use: Option<OwnedSemaphorePermit>,
}

impl Connection {
    /// A connection just opened, in use in `place`.
    pub(super) fn new(stream: TcpStream, place: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            buffer: BytesMut::with_capacity(READ_SIZE),
            since: Instant::now(),
            in_use: Some(place),
        }
    }

    /// Whether the service left it open and silent while it sat idle. An idle
    /// connection that reads as ready has been closed (or sent something unasked).
    pub(super) fn is_quiet(&self) -> bool {
        let mut context = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut context) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness can outlive what caused it: only a read tells.
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0; 1]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Reads more into the buffer; 0 at the connection's end.
    pub(super) async fn read_more(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.buffer).await
    }

    pub(super) fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buffer.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }
}
