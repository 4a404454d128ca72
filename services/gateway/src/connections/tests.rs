//! One file: the exchange's tests against real servers, sharing the servers they
//! start.
#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use http::Request;
use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let (destination, _) = scripted(
        |_| {
            Some(
                b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
        },
        false,
    )
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
    let racing =
        (0..12).map(|_| async { ok(connections.send_request(&destination, get()).await).await });
    futures::future::join_all(racing).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "never more than the cap"
    );
}
