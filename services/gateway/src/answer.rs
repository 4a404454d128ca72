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

use crate::connections::ConnectionOptions;

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
mod tests {
    //! An answer read whole and read in pieces must read the same. `read` plays the
    //! connection: it hands the parser one piece at a time, as reads would.

    use proptest::prelude::*;

    use super::*;

    /// What reading an answer came to.
    #[derive(Debug, PartialEq, Eq)]
    enum Read {
        /// The final head's status and headers, the body, whether the connection may
        /// be reused, and the bytes left after the body.
        Answer {
            status: u16,
            headers: Vec<(String, Vec<u8>)>,
            body: Vec<u8>,
            reusable: bool,
            after: Vec<u8>,
        },
        /// Malformed, at the head or in the body.
        Failed,
        /// The pieces ran out before the answer ended.
        Cut,
    }

    /// Reads an answer from `pieces` as the connection would, the connection closing
    /// after the last piece.
    fn read(pieces: &[&[u8]], head_only: bool) -> Read {
        let mut pieces = pieces.iter();
        let mut buffer = BytesMut::new();
        let (response, mut framing, keep_alive) = loop {
            match parse_head(&mut buffer, head_only) {
                Ok(Some(Parsed::Informational)) => {}
                Ok(Some(Parsed::Final(response, framing, keep_alive))) => {
                    break (response, framing, keep_alive);
                }
                Ok(None) => match pieces.next() {
                    Some(piece) => buffer.extend_from_slice(piece),
                    None => return Read::Cut,
                },
                Err(_) => return Read::Failed,
            }
        };
        let mut body = Vec::new();
        let mut reusable = keep_alive;
        loop {
            match framing.decode(&mut buffer) {
                Ok(Step::Data(data)) => {
                    assert!(!data.is_empty(), "a data step carries data");
                    body.extend_from_slice(&data);
                }
                Ok(Step::End) => break,
                Ok(Step::More) => match pieces.next() {
                    Some(piece) => buffer.extend_from_slice(piece),
                    None if framing == Framing::UntilClose => {
                        reusable = false;
                        break;
                    }
                    None => return Read::Cut,
                },
                Err(_) => return Read::Failed,
            }
        }
        let mut after = buffer.to_vec();
        for piece in pieces {
            after.extend_from_slice(piece);
        }
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        Read::Answer {
            status: response.status().as_u16(),
            headers,
            body,
            reusable,
            after,
        }
    }

    /// Reads `answer` whole, byte by byte, and split in two at every byte, and checks
    /// that all agree; returns what they read.
    fn read_every_way(answer: &[u8], head_only: bool) -> Read {
        let whole = read(&[answer], head_only);
        let bytes: Vec<&[u8]> = answer.chunks(1).collect();
        assert_eq!(read(&bytes, head_only), whole, "byte by byte");
        for at in 0..=answer.len() {
            let (a, b) = answer.split_at(at);
            assert_eq!(read(&[a, b], head_only), whole, "split at {at}");
        }
        whole
    }

    fn answer(status: u16, headers: &[(&str, &[u8])], body: &[u8], reusable: bool) -> Read {
        Read::Answer {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
                .collect(),
            body: body.to_vec(),
            reusable,
            after: Vec::new(),
        }
    }

    #[test]
    fn each_framing_reads_the_same_in_any_pieces() {
        let cases: &[(&[u8], bool, Read)] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                false,
                answer(200, &[("content-length", b"5")], b"hello", true),
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n\
                  1\r\n \r\n0005\r\nworld\r\n0\r\nx-t: 1\r\n\r\n",
                false,
                answer(200, &[], b"hello world", true),
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\nuntil the close",
                false,
                answer(200, &[], b"until the close", false),
            ),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                  HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
                false,
                answer(201, &[("content-length", b"2")], b"ok", true),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                true,
                answer(200, &[("content-length", b"5")], b"", true),
            ),
            (
                b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
                false,
                answer(204, &[("content-length", b"5")], b"", true),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\n\r\n",
                false,
                answer(304, &[], b"", true),
            ),
            // HTTP/1.0: read by its length, never reused.
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
                false,
                answer(200, &[("content-length", b"2")], b"ok", false),
            ),
            (
                b"HTTP/1.0 200 OK\r\n\r\nto the end",
                false,
                answer(200, &[], b"to the end", false),
            ),
            // Both length headers: chunked wins, the length goes, the connection too.
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n\
                  2\r\nok\r\n0\r\n\r\n",
                false,
                answer(200, &[], b"ok", false),
            ),
            // A coding after chunked: framed by the close.
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\nzz",
                false,
                answer(200, &[], b"zz", false),
            ),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                false,
                answer(200, &[("content-length", b"2")], b"ok", false),
            ),
            // Equal repeated lengths are one length.
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok",
                false,
                answer(200, &[("content-length", b"2, 2")], b"ok", true),
            ),
        ];
        for (bytes, head_only, expected) in cases {
            assert_eq!(
                &read_every_way(bytes, *head_only),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn bytes_after_a_body_are_left_where_they_are() {
        let read = read_every_way(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
            false,
        );
        let Read::Answer { body, after, .. } = read else {
            panic!("{read:?}")
        };
        assert_eq!(
            (&body[..], &after[..]),
            (&b"ok"[..], &b"HTTP/1.1 200 OK\r\n"[..])
        );

        let read = read_every_way(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nmore",
            false,
        );
        let Read::Answer { body, after, .. } = read else {
            panic!("{read:?}")
        };
        assert_eq!((&body[..], &after[..]), (&b"ok"[..], &b"more"[..]));
    }

    #[test]
    fn malformed_answers_fail_however_they_arrive() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"nonsense\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000000000000000\r\n",
            b"HTTP/2 200\r\n\r\n",
        ] {
            assert_eq!(
                read_every_way(bytes, false),
                Read::Failed,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn answers_past_the_limits_fail_however_they_arrive() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        // A chunk-size line of exactly the limit (with its CRLF) is read; one more
        // byte is not.
        let extension = |total: usize| format!("1;{}\r\n", "e".repeat(total - 4));
        let at_limit = format!("{chunked}{}x\r\n0\r\n\r\n", extension(MAX_CHUNK_LINE));
        assert!(matches!(
            read_every_way(at_limit.as_bytes(), false),
            Read::Answer { .. }
        ));
        let over = format!("{chunked}{}x\r\n0\r\n\r\n", extension(MAX_CHUNK_LINE + 1));
        assert_eq!(read_every_way(over.as_bytes(), false), Read::Failed);

        // Trailers: lines of exactly the chunk-line limit, up to the trailers' limit
        // and past it (the budget once underflowed here).
        let line = format!("x-t: {}\r\n", "v".repeat(MAX_CHUNK_LINE - 7));
        let fit = MAX_TRAILERS / MAX_CHUNK_LINE - 1;
        let within = format!("{chunked}0\r\n{}\r\n", line.repeat(fit));
        assert!(matches!(
            read_every_way(within.as_bytes(), false),
            Read::Answer { .. }
        ));
        let past = format!("{chunked}0\r\n{}\r\n", line.repeat(fit + 2));
        assert_eq!(read_every_way(past.as_bytes(), false), Read::Failed);

        // Heads: too many headers, too large.
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "x: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(read(&[many.as_bytes()], false), Read::Failed);
        let large = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "v".repeat(MAX_HEAD));
        assert_eq!(read(&[large.as_bytes()], false), Read::Failed);
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "v".repeat(MAX_HEAD));
        assert_eq!(read(&[endless.as_bytes()], false), Read::Failed);
    }

    /// A well-formed answer of any framing, and what reading it must give.
    fn an_answer() -> impl Strategy<Value = (Vec<u8>, bool, Vec<u8>)> {
        let body = proptest::collection::vec(any::<u8>(), 0..300);
        let status = prop::sample::select(vec![200u16, 201, 204, 304, 404, 422, 500, 503]);
        let framing = 0..3u8;
        let chunk_sizes = proptest::collection::vec(1..64usize, 1..8);
        let trailers = proptest::collection::vec("[a-z]{1,8}: [ -~]{0,20}", 0..3);
        let informational = any::<bool>();
        let head_only = any::<bool>();
        (
            status,
            framing,
            body,
            chunk_sizes,
            trailers,
            informational,
            head_only,
        )
            .prop_map(
                |(status, framing, body, sizes, trailers, informational, head_only)| {
                    let mut out = Vec::new();
                    if informational {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    out.extend_from_slice(format!("HTTP/1.1 {status} X\r\nx-a: 1\r\n").as_bytes());
                    let bodiless = head_only || status == 204 || status == 304;
                    match framing {
                        0 => {
                            out.extend_from_slice(
                                format!("content-length: {}\r\n\r\n", body.len()).as_bytes(),
                            );
                            if !bodiless {
                                out.extend_from_slice(&body);
                            }
                        }
                        1 => {
                            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                            if !bodiless {
                                let mut rest = &body[..];
                                for size in sizes.iter().cycle() {
                                    if rest.is_empty() {
                                        break;
                                    }
                                    let (chunk, more) = rest.split_at((*size).min(rest.len()));
                                    out.extend_from_slice(
                                        format!("{:x};ext\r\n", chunk.len()).as_bytes(),
                                    );
                                    out.extend_from_slice(chunk);
                                    out.extend_from_slice(b"\r\n");
                                    rest = more;
                                }
                                out.extend_from_slice(b"0\r\n");
                                for trailer in &trailers {
                                    out.extend_from_slice(trailer.as_bytes());
                                    out.extend_from_slice(b"\r\n");
                                }
                                out.extend_from_slice(b"\r\n");
                            }
                        }
                        _ => {
                            out.extend_from_slice(b"\r\n");
                            if !bodiless {
                                out.extend_from_slice(&body);
                            }
                        }
                    }
                    let expected = if bodiless { Vec::new() } else { body };
                    (out, head_only, expected)
                },
            )
    }

    proptest! {
        // PROPTEST_CASES sets how many; the crate's README says how to run it long.
        #[test]
        fn a_well_formed_answer_reads_whole_in_any_pieces((bytes, head_only, expected) in an_answer()) {
            match read_every_way(&bytes, head_only) {
                Read::Answer { body, after, .. } => {
                    prop_assert_eq!(body, expected);
                    prop_assert!(after.is_empty());
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn any_bytes_read_the_same_in_any_pieces_and_never_panic(
            (bytes, head_only, _) in an_answer(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = bytes;
            for (at, byte) in flips {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            read_every_way(&bytes, head_only);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            read_every_way(&bytes, false);
        }
    }
}
