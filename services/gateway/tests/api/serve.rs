//! The gateway's server: a service per connection, worker threads, the watchdog for
//! quiet connections.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use gateway::serve::per_connection;
use gateway::serve::stack::StackLayer;
use service_kit::server::Server;
use tower::Layer;

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

async fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

#[tokio::test]
async fn worker_threads_serve_connections_in_turn_and_stopping_drains_them() {
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let make = || {
        |_peer: std::net::SocketAddr| {
            let router = Router::new()
                .route("/thread", get(thread_name))
                .route("/slow", get(slow));
            StackLayer {
                request_timeout: Duration::from_secs(5),
            }
            .layer(service_kit::middleware::prepare(router))
        }
    };
    let service = per_connection(listener, 2, make, Duration::from_secs(5)).spawn();

    // Twenty connections at once, each its own client: each is handed to a worker.
    let url = format!("{}/thread", service.url());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = reqwest::Client::new().get(url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap()
            })
        })
        .collect();
    let mut threads = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        *threads.entry(call.await.unwrap()).or_default() += 1;
    }
    assert_eq!(
        threads.keys().collect::<Vec<_>>(),
        ["http-worker-0", "http-worker-1"],
        "every request on a worker, both workers used: {threads:?}"
    );
    assert_eq!(threads.values().collect::<Vec<_>>(), [&10, &10]);

    let slow = format!("{}/slow", service.url());
    let request = tokio::spawn(async move { reqwest::get(slow).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    service.stop().await.unwrap();
    let response = request
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(response.text().await.unwrap(), "done");
}

/// Sends `GET /` on one connection `times` times and returns the bodies, with the
/// connection's own (client-side) address.
async fn requests_on_one_connection(
    addr: std::net::SocketAddr,
    times: usize,
) -> (std::net::SocketAddr, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let mut stream = BufReader::new(stream);
    let mut bodies = Vec::new();
    for _ in 0..times {
        stream
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    (local, bodies)
}

#[tokio::test]
async fn each_connection_gets_its_own_service_that_knows_its_peer() {
    for workers in [0, 2] {
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let make = move || {
            let counter = counter.clone();
            move |peer: std::net::SocketAddr| {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                tower::service_fn(move |_: axum::extract::Request| async move {
                    let body = format!("{peer} {number}");
                    Ok::<_, std::convert::Infallible>(axum::response::IntoResponse::into_response(
                        body,
                    ))
                })
            }
        };
        let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let service = per_connection(listener, workers, make, Duration::from_secs(5)).spawn();

        let (first, second) = tokio::join!(
            requests_on_one_connection(service.addr(), 3),
            requests_on_one_connection(service.addr(), 2),
        );
        for (local, bodies) in [&first, &second] {
            let (peer, number) = bodies[0].split_once(' ').unwrap();
            assert_eq!(peer, local.to_string(), "the service knows its peer");
            assert!(
                bodies.iter().all(|b| b == &bodies[0]),
                "one service for the whole connection: {bodies:?}"
            );
            assert!(number == "0" || number == "1", "{number}");
        }
        assert_ne!(first.1[0], second.1[0]);
        assert_eq!(made.load(Ordering::SeqCst), 2, "one service per connection");
        service.stop().await.unwrap();
    }
}

/// A per-connection service answering "ok" (after 70 s on `/slow`), on this runtime.
async fn ok_per_connection() -> service_kit::server::RunningServer {
    let make = || {
        |_peer: std::net::SocketAddr| {
            tower::service_fn(|request: axum::extract::Request| async move {
                if request.uri().path() == "/slow" {
                    tokio::time::sleep(Duration::from_secs(70)).await;
                }
                Ok::<_, std::convert::Infallible>(axum::response::IntoResponse::into_response("ok"))
            })
        }
    };
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    per_connection(listener, 0, make, Duration::from_secs(5)).spawn()
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_a_request_in_time_is_closed_one_being_answered_is_not() {
    use gateway::serve::QUIET_CONNECTION_TIMEOUT;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let service = ok_per_connection().await;

    // In time, a head sent in two parts is answered.
    let mut patient = tokio::net::TcpStream::connect(service.addr())
        .await
        .unwrap();
    patient.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
    tokio::time::sleep(QUIET_CONNECTION_TIMEOUT - Duration::from_secs(1)).await;
    patient.write_all(b"st: test\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 1024];
    let read = patient.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );

    // A head still unfinished after the timeout: the connection is closed unanswered.
    let mut trickling = tokio::net::TcpStream::connect(service.addr())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    trickling.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
    let closed = |read: &Result<std::io::Result<usize>, _>| matches!(read, Ok(Ok(0) | Err(_)));
    let wait = QUIET_CONNECTION_TIMEOUT * 2;
    let read = tokio::time::timeout(wait, trickling.read(&mut answer)).await;
    assert!(closed(&read), "{read:?}");
    assert!(started.elapsed() >= QUIET_CONNECTION_TIMEOUT);

    // And a kept-alive connection that sends nothing more is closed as well.
    let read = tokio::time::timeout(wait, patient.read(&mut answer)).await;
    assert!(closed(&read), "{read:?}");

    // A request being answered keeps its connection, however long it takes.
    let mut waiting = tokio::net::TcpStream::connect(service.addr())
        .await
        .unwrap();
    waiting
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let read = waiting.read(&mut answer).await.unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    service.stop().await.unwrap();
}
