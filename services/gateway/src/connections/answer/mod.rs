//! Reading a service's answer from bytes as they arrive: its head ([`parse_head`]), then
//! its body as its framing says ([`Framing::decode`]). No I/O here: the connection
//! reads, these take what is whole off the front of its buffer and leave the rest, so
//! an answer read in any number of pieces, split anywhere, reads the same as one read
//! at once (the split-read property tests below hold that).
//!
//! HTTP/1.1 as RFC 9112 has it: the body framed by `Transfer-Encoding: chunked`,
//! `Content-Length`, or the connection's end; none for a `HEAD` request, a 204 or a 304;
//! informational (1xx) heads skipped. An answer that cannot be framed is malformed,
//! never guessed at. An answer's own connection headers (the hop-by-hop ones and those
//! its `Connection` names) are read for the framing and left out of its head.

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::options::ConnectionOptions;

/// Largest answer head (status line and headers) read from a service.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most headers an answer may have.
pub const MAX_HEADERS: usize = 100;

/// Longest chunk-size line, and most bytes of trailers, in a chunked answer (each with
/// its CRLFs).
pub const MAX_CHUNK_LINE: usize = 1024;
pub const MAX_TRAILERS: usize = 16 * 1024;

/// What a complete head was.
#[derive(Debug)]
pub enum Parsed {
    /// A 1xx, skipped: the final answer follows.
    Informational,
    /// The answer's head, its body's framing, whether the connection may be reused.
    Final(Response<()>, Framing, bool),
}

/// Takes one complete answer head off the front of `buffer`; none while it is
/// incomplete; an error (what is wrong) when it is not an answer that can be read.
pub fn parse_head(buffer: &mut BytesMut, head_only: bool) -> Result<Option<Parsed>, &'static str> {
    // Where each header's name and value lie in the head, so that the values can share
    // the head's bytes once it is taken off the buffer.
    let (length, code, version, spans) = {
        // Left uninitialized: zeroing a hundred slots cost more than the parse.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buffer,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buffer.len() >= MAX_HEAD => {
                return Err("its head is too large");
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err("too many headers"),
            Err(_) => return Err("not an HTTP/1.1 answer"),
        };
        if length > MAX_HEAD {
            return Err("its head is too large");
        }
        let start = buffer.as_ptr() as usize;
        let spans: Vec<_> = parsed
            .headers
            .iter()
            .map(|found| {
                let name = found.name.as_ptr() as usize - start;
                let value = found.value.as_ptr() as usize - start;
                (
                    name..name + found.name.len(),
                    value..value + found.value.len(),
                )
            })
            .collect();
        let (Some(code), Some(version)) = (parsed.code, parsed.version) else {
            return Err("not an HTTP/1.1 answer");
        };
        (length, code, version, spans)
    };
    let head = buffer.split_to(length).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| "bad status")?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("an unasked protocol switch");
        }
        return Ok(Some(Parsed::Informational));
    }

    // The connection's own headers (RFC 9110 §7.6.1: the hop-by-hop ones, and any that
    // `Connection` names) are read here, for the framing, and not passed on.
    let connection = ConnectionOptions::of(
        spans
            .iter()
            .filter(|(name, _)| head[name.clone()].eq_ignore_ascii_case(b"connection"))
            .map(|(_, value)| &head[value.clone()]),
    );
    // The last coding of the last `Transfer-Encoding` is the one that frames the body.
    let transfer_encoding = spans
        .iter()
        .rfind(|(name, _)| head[name.clone()].eq_ignore_ascii_case(b"transfer-encoding"))
        .map(|(_, value)| &head[value.clone()]);
    // Room for what the gateway adds on the way back (request id, trace, rate limits).
    let mut headers = HeaderMap::with_capacity(spans.len() + 8);
    for (name, value) in spans {
        let name = HeaderName::from_bytes(&head[name]).map_err(|_| "bad header name")?;
        if connection.excludes(&name) {
            continue;
        }
        let value =
            HeaderValue::from_maybe_shared(head.slice(value)).map_err(|_| "bad header value")?;
        headers.append(name, value);
    }

    let mut keep_alive = version == 1 && !connection.close;
    let framing =
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else if let Some(codings) = transfer_encoding {
            // Transfer-Encoding wins over Content-Length, which is then dropped; a message
            // carrying both is suspect, so its connection is not reused.
            if headers.remove(header::CONTENT_LENGTH).is_some() {
                keep_alive = false;
            }
            let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                Framing::ChunkSize
            } else {
                keep_alive = false;
                Framing::UntilClose
            }
        } else if headers.contains_key(header::CONTENT_LENGTH) {
            Framing::Length(content_length(&headers).ok_or("bad Content-Length")?)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };

    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(Some(Parsed::Final(response, framing, keep_alive)))
}

/// The one length every `Content-Length` value gives, if they agree and are numbers.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let parsed = std::str::from_utf8(part).ok()?.parse::<u64>().ok()?;
            if length.is_some_and(|known| known != parsed) {
                return None;
            }
            length = Some(parsed);
        }
    }
    length
}

/// How an answer's body is framed, and how far it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: this many bytes still to come (0: the body has ended).
    Length(u64),
    /// Chunked: at a chunk-size line.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk still to come.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailer lines, this many bytes of them read, until a blank line.
    Trailers(usize),
    /// Until the service closes the connection.
    UntilClose,
}

/// What [`Framing::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes of the body.
    Data(Bytes),
    /// The body has ended; what is left in the buffer came after it.
    End,
    /// More must be read (or, framed by the close, the close is its end).
    More,
}

impl Framing {
    /// Takes the body's next bytes, or its end, off the front of `buffer`.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Step> {
        loop {
            match *self {
                Self::Length(0) => return Ok(Step::End),
                Self::Length(left) | Self::ChunkData(left) if !buffer.is_empty() => {
                    let taken = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
                    let left = left - taken as u64;
                    *self = match *self {
                        Self::ChunkData(_) if left == 0 => Self::ChunkEnd,
                        Self::ChunkData(_) => Self::ChunkData(left),
                        _ => Self::Length(left),
                    };
                    return Ok(Step::Data(buffer.split_to(taken).freeze()));
                }
                Self::UntilClose if !buffer.is_empty() => {
                    return Ok(Step::Data(buffer.split().freeze()));
                }
                Self::ChunkSize => {
                    if let Some(line) = take_line(buffer, MAX_CHUNK_LINE)? {
                        *self = match chunk_size(&line)? {
                            0 => Self::Trailers(0),
                            size => Self::ChunkData(size),
                        };
                        continue;
                    }
                }
                Self::ChunkEnd if buffer.len() >= 2 => {
                    if &buffer[..2] != b"\r\n" {
                        return Err(invalid("a chunk without its CRLF"));
                    }
                    buffer.advance(2);
                    *self = Self::ChunkSize;
                    continue;
                }
                Self::Trailers(read) => {
                    // `read` never passes the limit: each line is taken within what is
                    // left of it.
                    if let Some(line) = take_line(buffer, MAX_TRAILERS - read)? {
                        if line.is_empty() {
                            *self = Self::Length(0);
                            return Ok(Step::End);
                        }
                        *self = Self::Trailers(read + line.len() + 2);
                        continue;
                    }
                }
                _ => {}
            }
            return Ok(Step::More);
        }
    }

    /// Whether the body has ended.
    pub fn ended(self) -> bool {
        self == Self::Length(0)
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Takes a CRLF-terminated line off the front of `buffer` (returned without its CRLF);
/// none yet if it is incomplete; an error if it is malformed or, with its CRLF, longer
/// than `limit` bytes.
fn take_line(buffer: &mut BytesMut, limit: usize) -> io::Result<Option<Bytes>> {
    let looked = buffer.len().min(limit);
    match buffer[..looked].iter().position(|&b| b == b'\n') {
        Some(end) if end > 0 && buffer[end - 1] == b'\r' => {
            let line = buffer.split_to(end + 1).freeze();
            Ok(Some(line.slice(..end - 1)))
        }
        Some(_) => Err(invalid("a line without its CR in a chunked body")),
        None if buffer.len() >= limit => Err(invalid("an overlong line in a chunked body")),
        None => Ok(None),
    }
}

/// A chunk-size line's size: hex digits, then perhaps extensions (ignored).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("a malformed chunk size"));
    }
    let digits = std::str::from_utf8(digits).map_err(|_| invalid("a malformed chunk size"))?;
    u64::from_str_radix(digits, 16).map_err(|_| invalid("a malformed chunk size"))
}

#[cfg(test)]
mod tests;
