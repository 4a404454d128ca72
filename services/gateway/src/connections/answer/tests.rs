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
