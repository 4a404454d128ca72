//! A request's head as it goes to a service, and how its body is framed.

use axum::body::Body;
use http::Method;
use http::header::{self, HeaderName, HeaderValue};

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outgoing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: a body of unknown length.
    Chunked,
}

impl Outgoing {
    pub(super) fn of(body: &Body) -> Self {
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
    pub(super) idempotent: bool,
    /// Whether the answer has no body whatever it declares (`HEAD`).
    pub(super) head_only: bool,
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
    pub(super) fn finish(mut self, framing: Outgoing) -> Vec<u8> {
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
