//! One HTTP worker's connections to the services, and the HTTP/1.1 exchanges on them.
//!
//! A request is written, and its answer's head read, by the request's own task, on a
//! connection taken from a short list per service; the answer's body is read by
//! whoever polls it (the server, sending it on to the client), and when it ends the
//! connection goes back on its list. Nothing else runs: no task per connection, no
//! channel between a request and its connection. (hyper's connection-level client
//! drives each connection from a task of its own and passes requests and answers to it
//! through channels: a third of the proxy's instructions per request.)
//!
//! A worker's requests never leave its thread ([`service_kit::server::workers`]), so
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

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::answer::{Framing, Parsed, Step, parse_head};

/// How long a connection may sit unused before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most connections kept per service and worker.
pub const MAX_IDLE: usize = 256;

/// Most connections open at once per service and worker: a request past it waits for
/// one to come free (or for the server's time limit). Counted as connections in use:
/// a new one opens only when none is idle, so those idle came from those in use.
pub const MAX_OPEN: usize = 512;

/// Headers that describe one connection, never passed on (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What a message's `Connection` headers say: whether `close`, and which other headers
/// describe that one connection (RFC 9110 §7.6.1). Read the same way for a client's
/// request and a service's answer; nothing is allocated unless a header is named.
pub struct ConnectionOptions<'a> {
    pub close: bool,
    /// The names listed beyond `close` and the hop-by-hop ones (left out anyway).
    named: Vec<&'a [u8]>,
}

impl<'a> ConnectionOptions<'a> {
    /// Reads the values of a message's `Connection` headers.
    pub fn of(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut options = Self {
            close: false,
            named: Vec::new(),
        };
        for value in values {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    options.close = true;
                } else if !token.is_empty()
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes()))
                {
                    options.named.push(token);
                }
            }
        }
        options
    }

    /// Whether `name` describes the connection only: hop-by-hop, or named here.
    pub fn excludes(&self, name: &HeaderName) -> bool {
        HOP_BY_HOP.contains(name)
            || self
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes()))
    }
}

/// How much is read from a connection at a time.
const READ_SIZE: usize = 16 * 1024;

/// Why a request got no answer, or its answer's body broke off.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection could be made: the service is down or unreachable.
    #[error("could not connect to {address}: {error}")]
    Connect { address: String, error: io::Error },
    /// The connection failed, or the service closed it before answering in full.
    #[error("the connection to the service failed: {0}")]
    Io(#[from] io::Error),
    /// The service's answer is not HTTP/1.1 that can be read.
    #[error("the service's answer is malformed: {0}")]
    Malformed(&'static str),
    /// The request's body failed while it was being sent (the client went, or its body
    /// outgrew the limit).
    #[error("the request's body failed: {0}")]
    Body(#[source] axum::Error),
}

impl Failure {
    fn closed(when: &'static str) -> Self {
        Self::Io(io::Error::new(io::ErrorKind::UnexpectedEof, when))
    }
}

/// Where one service listens.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Its place in [`Connections`]' lists.
    pub index: usize,
    /// `host:port`, to connect to.
    pub address: String,
}

/// An open connection, and what was read from it but not yet used.
struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
    /// When it went back on its list.
    since: Instant,
    /// Its place among the service's [`Limits::max_open`], while it is in use.
    in_use: Option<OwnedSemaphorePermit>,
}

impl Connection {
    /// Whether the service left it open and silent while it sat idle. An idle
    /// connection that reads as ready has been closed (or sent something unasked).
    fn is_quiet(&self) -> bool {
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
    async fn read_more(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.buffer).await
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buffer.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }
}

/// A service's connections: the idle ones, the longest idle first, and a permit for
/// each one in use.
struct List {
    idle: Mutex<Vec<Connection>>,
    in_use: Arc<Semaphore>,
}

impl List {
    /// A place for one more connection in use, once there is one.
    async fn place(&self) -> Result<OwnedSemaphorePermit, Failure> {
        match self.in_use.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                self.in_use.clone().acquire_owned().await.map_err(|_| {
                    Failure::Io(io::Error::other("the service's connections are closed"))
                })
            }
        }
    }
}

fn lock(list: &List) -> MutexGuard<'_, Vec<Connection>> {
    list.idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a service may take to accept a connection, and how many it gets. (How long
/// it may take to answer is the request's time limit, the server's: a timer of the
/// exchange's own cost 2.5 % of a proxied request's instructions.)
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
                .map(|_| {
                    Arc::new(List {
                        idle: Mutex::default(),
                        in_use: Arc::new(Semaphore::new(limits.max_open)),
                    })
                })
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
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_SIZE),
            since: Instant::now(),
            in_use: Some(place),
        })
    }
}

/// A connection of the list's that is open and ready for a request, if any; closes
/// those that were idle too long or that the service closed, on the way.
fn take(list: &List) -> Option<Connection> {
    let mut list = lock(list);
    let now = Instant::now();
    let stale = list
        .iter()
        .take_while(|idle| now - idle.since > IDLE_TIMEOUT)
        .count();
    list.drain(..stale);
    // The most recently used first: the likeliest to be open, and the others age out.
    while let Some(connection) = list.pop() {
        if connection.is_quiet() {
            return Some(connection);
        }
    }
    None
}

fn give_back(list: &List, mut connection: Connection) {
    connection.in_use = None;
    let mut list = lock(list);
    if list.len() < MAX_IDLE {
        connection.since = Instant::now();
        list.push(connection);
    }
}

/// How an exchange failed.
enum Failed {
    /// The connection closed before anything of an answer came: a request without a
    /// body can go again elsewhere.
    Unanswered(Failure),
    Other(Failure),
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: a body of unknown length.
    Chunked,
}

impl Outgoing {
    fn of(body: &Body) -> Self {
        match hyper::body::Body::size_hint(body).exact() {
            Some(0) => Self::Empty,
            Some(length) => Self::Length(length),
            None => Self::Chunked,
        }
    }
}

/// A request's head as it goes to a service, written as it is built: the request line,
/// then each header. [`Connections::send`] adds the framing of the body it is sent with.
pub struct Head {
    bytes: Vec<u8>,
    /// Whether the method may be sent twice without harm.
    idempotent: bool,
    /// Whether the answer has no body whatever it declares (`HEAD`).
    head_only: bool,
    /// Whether the method's requests carry a body, so that an empty one is declared.
    body_expected: bool,
}

impl Head {
    /// `method` on the origin-form target (path and query) that `target`'s parts make
    /// together; none when that is not one: it must start with `/` and hold only visible
    /// ASCII (a space or a line break would end the request line early).
    pub fn new(method: &Method, target: &[&str]) -> Option<Self> {
        let valid = target
            .iter()
            .all(|part| part.bytes().all(|b| b.is_ascii_graphic()))
            && target
                .iter()
                .find(|part| !part.is_empty())?
                .starts_with('/');
        if !valid {
            return None;
        }
        let mut bytes = Vec::with_capacity(512);
        bytes.extend_from_slice(method.as_str().as_bytes());
        bytes.push(b' ');
        for part in target {
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        Some(Self {
            bytes,
            idempotent: method.is_idempotent(),
            head_only: method == Method::HEAD,
            body_expected: matches!(*method, Method::POST | Method::PUT | Method::PATCH),
        })
    }

    /// Adds a header (valid by its types). `Content-Length` and `Transfer-Encoding` are
    /// left out: the body's framing is written by [`Connections::send`].
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return;
        }
        let (name, value) = (name.as_str().as_bytes(), value.as_bytes());
        self.bytes.reserve(name.len() + value.len() + 4);
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(b": ");
        self.bytes.extend_from_slice(value);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// Adds a header whose value `value` writes: for values made without a
    /// `HeaderValue` of their own (an address, a trace id). A value that is not a valid
    /// field value (a control character in it) leaves the header out.
    pub fn header_with(&mut self, name: &HeaderName, value: impl FnOnce(&mut Vec<u8>)) {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_str().as_bytes());
        self.bytes.extend_from_slice(b": ");
        let value_start = self.bytes.len();
        value(&mut self.bytes);
        if self.bytes[value_start..]
            .iter()
            .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
        {
            self.bytes.extend_from_slice(b"\r\n");
        } else {
            self.bytes.truncate(start);
        }
    }

    /// The head's bytes, with the body's framing and the blank line that ends it.
    fn finish(mut self, framing: Outgoing) -> Vec<u8> {
        match framing {
            Outgoing::Length(length) => {
                self.bytes.extend_from_slice(b"content-length: ");
                self.bytes
                    .extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
                self.bytes.extend_from_slice(b"\r\n");
            }
            Outgoing::Chunked => self
                .bytes
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Outgoing::Empty if self.body_expected => {
                self.bytes.extend_from_slice(b"content-length: 0\r\n");
            }
            Outgoing::Empty => {}
        }
        self.bytes.extend_from_slice(b"\r\n");
        self.bytes
    }
}

/// One request on `connection`: written, its answer's head read. The connection goes
/// back on `list` once the answer's body is read to its end.
async fn exchange(
    list: &Arc<List>,
    mut connection: Connection,
    head: &[u8],
    body: Option<(Body, Outgoing)>,
    head_only: bool,
) -> Result<Response<Body>, Failed> {
    let mut written_whole = true;
    let mut early = None;
    match body {
        None => {
            if let Err(error) = connection.stream.write_all(head).await {
                return Err(Failed::Unanswered(error.into()));
            }
        }
        Some((body, framing)) => {
            match write_with_body(&mut connection, head, body, framing, head_only).await {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    written_whole = false;
                    early = Some(answer);
                }
                // The service may have answered and closed: its answer is read below.
                Err(Failure::Io(_)) => written_whole = false,
                Err(failure) => return Err(Failed::Other(failure)),
            }
        }
    }

    let (response, framing, keep_alive) = match early {
        Some(answer) => answer,
        None => read_head(&mut connection, head_only).await?,
    };

    let reusable = keep_alive && written_whole;
    let body = if framing.ended() {
        if reusable && connection.buffer.is_empty() {
            give_back(list, connection);
        }
        Body::empty()
    } else {
        Body::new(Answer {
            streaming: Some(Streaming {
                connection,
                framing,
                reusable,
                list: list.clone(),
            }),
        })
    };
    Ok(response.map(|()| body))
}

/// A final answer's head, its body's framing, whether its connection may be reused.
type FinalHead = (Response<()>, Framing, bool);

/// Reads the answer's head, skipping informational ones.
async fn read_head(connection: &mut Connection, head_only: bool) -> Result<FinalHead, Failed> {
    let mut informational = false;
    loop {
        match parse_head(&mut connection.buffer, head_only) {
            Ok(Some(Parsed::Informational)) => informational = true,
            Ok(Some(Parsed::Final(response, framing, keep_alive))) => {
                return Ok((response, framing, keep_alive));
            }
            Ok(None) => match connection.read_more().await {
                Ok(0) if connection.buffer.is_empty() && !informational => {
                    return Err(Failed::Unanswered(Failure::closed(
                        "closed without answering",
                    )));
                }
                Ok(0) => return Err(Failed::Other(Failure::closed("closed mid-answer"))),
                Ok(_) => {}
                Err(error) if connection.buffer.is_empty() && !informational => {
                    return Err(Failed::Unanswered(error.into()));
                }
                Err(error) => return Err(Failed::Other(error.into())),
            },
            Err(malformed) => return Err(Failed::Other(Failure::Malformed(malformed))),
        }
    }
}

/// Writes the request's head and body while watching for the answer: a service may
/// answer (and stop reading) before the body is all sent. Returns the answer's head if
/// a final one came before the body was written whole. An informational answer (a
/// `100 Continue`, say) does not stop the writing: the service wants the body.
async fn write_with_body(
    connection: &mut Connection,
    head: &[u8],
    body: Body,
    framing: Outgoing,
    head_only: bool,
) -> Result<Option<FinalHead>, Failure> {
    let (mut reader, mut writer) = connection.stream.split();
    let buffer = &mut connection.buffer;
    let writing = async {
        writer.write_all(head).await?;
        let mut body = std::pin::pin!(body);
        let mut sent: u64 = 0;
        let mut chunk = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(Failure::Body)?.into_data() else {
                continue; // trailers: not sent
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            match framing {
                Outgoing::Chunked => {
                    chunk.clear();
                    chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    writer.write_all(&chunk).await?;
                }
                Outgoing::Length(length) if sent > length => {
                    return Err(Failure::Body(axum::Error::new(
                        "the body is longer than it said",
                    )));
                }
                _ => writer.write_all(&data).await?,
            }
        }
        match framing {
            Outgoing::Chunked => writer.write_all(b"0\r\n\r\n").await?,
            Outgoing::Length(length) if sent != length => {
                return Err(Failure::Body(axum::Error::new(
                    "the body is shorter than it said",
                )));
            }
            _ => {}
        }
        Ok::<_, Failure>(())
    };
    let answered = async {
        loop {
            match reader.read_buf(buffer).await {
                Ok(0) => return Err(Failure::closed("closed while the request was sent")),
                Ok(_) => {}
                Err(error) => return Err(error.into()),
            }
            // Cancel-safe: a head is taken off the buffer only once whole.
            while let Some(parsed) = parse_head(buffer, head_only).map_err(Failure::Malformed)? {
                if let Parsed::Final(response, framing, keep_alive) = parsed {
                    return Ok((response, framing, keep_alive));
                }
            }
        }
    };
    tokio::select! {
        written = writing => written.map(|()| None),
        answer = answered => answer.map(Some),
    }
}

/// An answer's body, read from its connection as it is polled; the connection goes
/// back on its list at the body's end, or closes if the body is dropped before.
struct Answer {
    streaming: Option<Streaming>,
}

struct Streaming {
    connection: Connection,
    framing: Framing,
    reusable: bool,
    list: Arc<List>,
}

impl Streaming {
    /// The body ended here: the connection is reused if nothing more came with it.
    fn finish(self) {
        if self.reusable && self.connection.buffer.is_empty() {
            give_back(&self.list, self.connection);
        }
    }

    /// The next frame, or `None` at the body's end (the framing then says so).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match self.framing.decode(&mut self.connection.buffer)? {
                Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                Step::End => return Poll::Ready(None),
                Step::More => {}
            }
            let read = ready!(self.connection.poll_read_more(cx))?;
            if read == 0 {
                if self.framing == Framing::UntilClose {
                    self.reusable = false;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the service closed the connection mid-body",
                ))));
            }
        }
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(streaming) = self.streaming.as_mut() else {
            return Poll::Ready(None);
        };
        let next = ready!(streaming.poll_next(cx));
        // Ended, failed, or its last bytes: the connection is done with either way (a
        // server sending a body of known length stops polling at its last byte).
        if (!matches!(next, Some(Ok(_))) || streaming.framing.ended())
            && let Some(streaming) = self.streaming.take()
            && matches!(next, None | Some(Ok(_)))
        {
            streaming.finish();
        }
        Poll::Ready(next.map(|next| next.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.streaming.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.streaming {
            None => SizeHint::with_exact(0),
            Some(Streaming {
                framing: Framing::Length(left),
                ..
            }) => SizeHint::with_exact(*left),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;
    use http::Request;
    use http::StatusCode;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A service answering `ok` after `delay`, counting the connections it accepted.
    async fn service(delay: Duration) -> (Destination, Arc<AtomicUsize>) {
        serve(move |_request| async move {
            tokio::time::sleep(delay).await;
            Response::new(Body::from("ok"))
        })
        .await
    }

    /// A hyper service answering each request with `answer`, counting connections.
    async fn serve<F, Fut>(answer: F) -> (Destination, Arc<AtomicUsize>)
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let answer = service_fn(move |request| {
                        let answered = answer(request);
                        async move { Ok::<_, std::convert::Infallible>(answered.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        (Destination { index: 0, address }, accepted)
    }

    /// A service written by hand: the n-th request head on each connection (bodies are
    /// not read) gets `answers(n)` as it is; the connection closes when that is `None`
    /// or, with `close_after_last`, right after the last answer. Counts connections.
    async fn scripted(
        answers: fn(usize) -> Option<&'static [u8]>,
        close_after_last: bool,
    ) -> (Destination, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut read = Vec::new();
                    for n in 0.. {
                        while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut more = [0; 4096];
                            match stream.read(&mut more).await {
                                Ok(0) | Err(_) => return,
                                Ok(count) => read.extend_from_slice(&more[..count]),
                            }
                        }
                        let end = read.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        read.drain(..end + 4);
                        let Some(answer) = answers(n) else { return };
                        if stream.write_all(answer).await.is_err()
                            || (close_after_last && answers(n + 1).is_none())
                        {
                            return;
                        }
                    }
                });
            }
        });
        (Destination { index: 0, address }, accepted)
    }

    const LIMITS: Limits = Limits {
        connect_timeout: Duration::from_secs(1),
        max_open: MAX_OPEN,
    };

    fn request(method: Method, body: Body) -> (Head, Body) {
        let mut head = Head::new(&method, &["/x", "?y=1"]).unwrap();
        head.header(&header::HOST, &HeaderValue::from_static("test"));
        (head, body)
    }

    fn get() -> (Head, Body) {
        request(Method::GET, Body::empty())
    }

    impl Connections {
        async fn send_request(
            &self,
            destination: &Destination,
            (head, body): (Head, Body),
        ) -> Result<Response<Body>, Failure> {
            self.send(destination, head, body).await
        }
    }

    async fn text(response: Result<Response<Body>, Failure>) -> (StatusCode, String) {
        let response = response.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Sends `times` requests to `destination` one after another, each answered 200
    /// with `body`.
    async fn answered_in_turn(destination: &Destination, times: usize, body: &str) {
        let connections = Connections::new(1, LIMITS);
        for _ in 0..times {
            let response = connections.send_request(destination, get()).await;
            assert_eq!(text(response).await, (StatusCode::OK, body.to_owned()));
        }
    }

    async fn ok(response: Result<Response<Body>, Failure>) {
        assert_eq!(text(response).await, (StatusCode::OK, "ok".to_owned()));
    }

    #[tokio::test]
    async fn requests_in_turn_share_one_connection_and_concurrent_ones_open_their_own() {
        let (destination, accepted) = service(Duration::from_millis(20)).await;
        let connections = Connections::new(1, LIMITS);

        for _ in 0..10 {
            ok(connections.send_request(&destination, get()).await).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let racing =
            (0..8).map(|_| async { ok(connections.send_request(&destination, get()).await).await });
        futures::future::join_all(racing).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            8,
            "the one idle connection is reused, seven more are opened"
        );

        for _ in 0..10 {
            ok(connections.send_request(&destination, get()).await).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8, "all eight are kept");
    }

    #[tokio::test]
    async fn a_connection_the_service_closed_while_idle_is_not_reused() {
        // One answer per connection, then the connection closes without saying so.
        let (destination, accepted) = scripted(
            |n| (n == 0).then_some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            true,
        )
        .await;
        let connections = Connections::new(1, LIMITS);

        for _ in 0..5 {
            ok(connections.send_request(&destination, get()).await).await;
            // The close arrives while the connection sits idle.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_request_the_service_closed_on_goes_again_only_if_it_can() {
        // Answers the first request on each connection; reads the second and closes.
        let (destination, accepted) = scripted(
            |n| (n == 0).then_some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            false,
        )
        .await;
        let connections = Connections::new(1, LIMITS);

        ok(connections.send_request(&destination, get()).await).await;
        // An idempotent request without a body goes again, on a new connection.
        ok(connections.send_request(&destination, get()).await).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // A POST might have been acted on: it is not sent twice.
        let failed = connections
            .send_request(&destination, request(Method::POST, Body::empty()))
            .await;
        assert!(matches!(failed, Err(Failure::Io(_))), "{failed:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_service_that_does_not_listen_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let connections = Connections::new(1, LIMITS);

        let failed = connections
            .send_request(&Destination { index: 0, address }, get())
            .await;
        assert!(matches!(failed, Err(Failure::Connect { .. })), "{failed:?}");
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_to_its_end_and_its_connection_reused() {
        let (destination, accepted) = scripted(
            |_| {
                Some(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                  5;note=x\r\nhello\r\n1\r\n \r\n005\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n",
                )
            },
            false,
        )
        .await;
        answered_in_turn(&destination, 3, "hello world").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_without_a_length_runs_to_the_close_and_its_connection_is_not_reused() {
        let (destination, accepted) = scripted(
            |n| (n == 0).then_some(b"HTTP/1.1 200 OK\r\n\r\nall of it"),
            true,
        )
        .await;
        answered_in_turn(&destination, 2, "all of it").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn head_and_no_content_answers_have_no_body_whatever_they_declare() {
        let (destination, accepted) = scripted(
            |n| {
                Some(match n % 3 {
                    0 => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                    1 => b"HTTP/1.1 204 No Content\r\n\r\n",
                    _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                })
            },
            false,
        )
        .await;
        let connections = Connections::new(1, LIMITS);

        let head = connections
            .send_request(&destination, request(Method::HEAD, Body::empty()))
            .await
            .unwrap();
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "5");
        assert!(hyper::body::Body::is_end_stream(head.body()));
        let (status, body) = text(connections.send_request(&destination, get()).await).await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
        ok(connections.send_request(&destination, get()).await).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "each answer ended where it should"
        );
    }

    #[tokio::test]
    async fn an_answers_connection_headers_stay_with_the_connection() {
        let (destination, accepted) = scripted(
            |_| {
                Some(
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nkeep-alive: timeout=5\r\n\
                      x-secret: 1\r\nx-kept: 1\r\ncontent-length: 2\r\n\r\nok",
                )
            },
            false,
        )
        .await;
        let connections = Connections::new(1, LIMITS);

        for _ in 0..2 {
            let response = connections.send_request(&destination, get()).await.unwrap();
            let names: Vec<_> = response.headers().keys().map(HeaderName::as_str).collect();
            assert_eq!(names, ["x-kept", "content-length"]);
            assert_eq!(
                response.into_body().collect().await.unwrap().to_bytes(),
                "ok"
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "keep-alive is not close"
        );
    }

    #[test]
    fn a_head_never_carries_what_would_break_it_or_frame_the_body() {
        for target in [&["/a b"][..], &["/a\r\nx: y"], &["a"], &[""], &["/é"]] {
            assert!(Head::new(&Method::GET, target).is_none(), "{target:?}");
        }
        let mut head = Head::new(&Method::POST, &["", "/a", "?", "b=1"]).unwrap();
        head.header_with(&HeaderName::from_static("x-bad"), |out| {
            out.extend_from_slice(b"1\r\nx-injected: 1");
        });
        head.header(&header::CONTENT_LENGTH, &HeaderValue::from_static("99"));
        head.header(&header::HOST, &HeaderValue::from_static("service"));
        assert_eq!(
            head.finish(Outgoing::Empty),
            b"POST /a?b=1 HTTP/1.1\r\nhost: service\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn informational_answers_are_skipped() {
        let (destination, _) = scripted(|_| {
            Some(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        }, false)
        .await;
        let connections = Connections::new(1, LIMITS);

        ok(connections.send_request(&destination, get()).await).await;
    }

    #[tokio::test]
    async fn answers_that_cannot_be_framed_are_failures() {
        let (destination, _) = scripted(
            |n| {
                Some(match n {
                    0 => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
                    1 => b"HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\nok",
                    _ => b"nonsense\r\n\r\n",
                })
            },
            false,
        )
        .await;
        let connections = Connections::new(1, LIMITS);

        for _ in 0..3 {
            let failed = connections.send_request(&destination, get()).await;
            assert!(matches!(failed, Err(Failure::Malformed(_))), "{failed:?}");
        }

        let (destination, _) = scripted(
            |_| Some(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"),
            false,
        )
        .await;
        let response = connections.send_request(&destination, get()).await.unwrap();
        assert!(response.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn bodies_go_with_their_length_or_chunked() {
        let (destination, _) = serve(|request: Request<hyper::body::Incoming>| async move {
            let framing = match request.headers().get(header::CONTENT_LENGTH) {
                Some(length) => format!("length {}", length.to_str().unwrap()),
                None => format!("{:?}", request.headers().get(header::TRANSFER_ENCODING)),
            };
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Response::new(Body::from(format!(
                "{framing}: {}",
                String::from_utf8(body.to_vec()).unwrap()
            )))
        })
        .await;
        let connections = Connections::new(1, LIMITS);

        let sized = connections
            .send_request(
                &destination,
                request(Method::POST, Body::from("twelve bytes")),
            )
            .await;
        assert_eq!(text(sized).await.1, "length 12: twelve bytes");

        let parts = futures::stream::iter(["str", "eam", "ed"])
            .map(|part| Ok::<_, std::convert::Infallible>(Bytes::from_static(part.as_bytes())));
        let streamed = connections
            .send_request(&destination, request(Method::PUT, Body::from_stream(parts)))
            .await;
        assert_eq!(text(streamed).await.1, "Some(\"chunked\"): streamed");

        let empty = connections
            .send_request(&destination, request(Method::POST, Body::empty()))
            .await;
        assert_eq!(text(empty).await.1, "length 0: ");
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_sent_is_heard() {
        // Answers as soon as it has the head, and never reads the body.
        let (destination, _) = scripted(|_| {
            Some(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        }, false)
        .await;
        let connections = Connections::new(1, LIMITS);
        // A body that never ends: more than any socket buffer holds, then nothing.
        let endless = futures::stream::repeat(Bytes::from(vec![b'x'; 64 * 1024]))
            .take(1024)
            .map(Ok::<_, std::convert::Infallible>)
            .chain(futures::stream::pending());

        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            connections.send_request(
                &destination,
                request(Method::POST, Body::from_stream(endless)),
            ),
        )
        .await
        .expect("the answer is heard while the body is still going");
        assert_eq!(answered.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_100_continue_from_the_service_does_not_stop_the_body() {
        // hyper's server answers `100 Continue` when its service reads the body.
        let (destination, _) = serve(|request: Request<hyper::body::Incoming>| async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Response::new(Body::from(body.len().to_string()))
        })
        .await;
        let connections = Connections::new(1, LIMITS);
        for size in [10, 300_000, 900_000] {
            let (mut head, body) = request(Method::POST, Body::from(vec![b'x'; size]));
            head.header(&header::EXPECT, &HeaderValue::from_static("100-continue"));
            let answered = tokio::time::timeout(
                Duration::from_secs(5),
                connections.send_request(&destination, (head, body)),
            )
            .await
            .expect("answered once the whole body is sent");
            assert_eq!(text(answered).await, (StatusCode::OK, size.to_string()));
        }
    }

    #[tokio::test]
    async fn connections_to_a_service_are_capped_and_requests_past_the_cap_wait() {
        let (destination, accepted) = service(Duration::from_millis(50)).await;
        let connections = Connections::new(
            1,
            Limits {
                max_open: 3,
                ..LIMITS
            },
        );
        let racing = (0..12)
            .map(|_| async { ok(connections.send_request(&destination, get()).await).await });
        futures::future::join_all(racing).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "never more than the cap"
        );
    }
}
