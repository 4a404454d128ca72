//! What travels with a call without the handler passing it: the request id, the trace,
//! and the deadline, which a service-kit server enforces.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use service_client::{Client, ErrorKind};
use service_kit::server::{RunningServer, Server};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(router: Router) -> RunningServer {
    let router = service_kit::middleware::apply(router, Duration::from_secs(10));
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Server::new(listener, router, Duration::from_secs(5)).spawn()
}

/// A peer answering 200 to everything, and a service whose `/upstream` calls it.
async fn serving_a_peer() -> (MockServer, RunningServer) {
    let peer = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&peer)
        .await;
    let service = serve(
        Router::new()
            .route("/upstream", get(calls_peer))
            .with_state(common::client(&peer.uri())),
    )
    .await;
    (peer, service)
}

/// A handler that calls its peer and passes nothing along by hand.
async fn calls_peer(State(peer): State<Client>) -> Result<String, service_kit::Problem> {
    let response = peer.get("/downstream").send().await?;
    Ok(response.status.to_string())
}

#[tokio::test]
async fn the_request_id_and_trace_of_the_served_request_reach_the_peer() {
    let (peer, service) = serving_a_peer().await;

    let incoming_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = reqwest::Client::new()
        .get(format!("{}/upstream", service.url()))
        .header("x-request-id", "req-propagated-1")
        .header("traceparent", incoming_trace)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "200 OK");

    let received = peer.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let headers = &received[0].headers;
    assert_eq!(headers.get("x-request-id").unwrap(), "req-propagated-1");
    let outgoing = headers.get("traceparent").unwrap().to_str().unwrap();
    assert!(
        outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{outgoing}"
    );
    assert!(
        !outgoing.contains("00f067aa0ba902b7"),
        "the peer's span must be a new child span"
    );
}

#[tokio::test]
async fn the_callers_tracestate_goes_on_with_its_trace_and_only_with_it() {
    let (peer, service) = serving_a_peer().await;
    let call = |traceparent: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/upstream", service.url()))
            .header("traceparent", traceparent)
            .header("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
            .send()
    };
    // A later version's traceparent is continued, its state with it.
    call("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later")
        .await
        .unwrap();
    // A malformed one starts a new trace, and the state belongs to no trace of ours.
    call("00-not-a-trace").await.unwrap();

    let received = peer.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let continued = &received[0].headers;
    assert!(
        continued
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
    assert_eq!(
        continued.get("tracestate").unwrap(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    assert!(received[1].headers.get("tracestate").is_none());
}

#[tokio::test]
async fn a_call_outside_any_request_starts_a_new_trace() {
    let peer = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&peer)
        .await;
    common::client(&peer.uri()).get("/x").send().await.unwrap();
    let received = peer.received_requests().await.unwrap();
    let trace = received[0]
        .headers
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        service_kit::trace_context::TraceParent::parse(trace).is_some(),
        "{trace}"
    );
    assert!(received[0].headers.get("x-request-id").is_none());
}

#[tokio::test]
async fn a_service_kit_server_stops_working_once_the_callers_deadline_has_passed() {
    /// Says so when the handler's future is dropped, finished or not.
    struct OnDrop(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.take().map(|dropped| dropped.send(()));
        }
    }
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let (dropped, was_dropped) = tokio::sync::oneshot::channel();
    let dropped = Arc::new(std::sync::Mutex::new(Some(dropped)));
    let service = serve(Router::new().route(
        "/slow",
        get(move || {
            let (flag, guard) = (flag.clone(), OnDrop(dropped.lock().unwrap().take()));
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_millis(400)).await;
                flag.store(true, Ordering::SeqCst);
                "finished"
            }
        }),
    ))
    .await;

    let client = common::client_with(&service.url(), |p| p.max_attempts = 1);
    let started = Instant::now();
    let error = client
        .get("/slow")
        .deadline(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind, ErrorKind::DeadlineExceeded | ErrorKind::Timeout)
            || error.status().map(|s| s.as_u16()) == Some(504),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_millis(400));

    // The handler's work was dropped, not left running: a handler that ran on would
    // have finished before its future was dropped.
    tokio::time::timeout(Duration::from_secs(5), was_dropped)
        .await
        .expect("the handler was never dropped")
        .unwrap();
    assert!(
        !finished.load(Ordering::SeqCst),
        "the handler ran past the caller's deadline"
    );
}

#[tokio::test]
async fn a_request_whose_deadline_header_has_passed_gets_a_504_problem() {
    let service = serve(Router::new().route("/x", get(|| async { "ok" }))).await;
    let response = reqwest::Client::new()
        .get(format!("{}/x", service.url()))
        .header("x-deadline-ms", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn an_onward_call_never_outlives_the_served_requests_deadline() {
    let peer = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&peer)
        .await;
    // The peer client alone would wait up to 2 s.
    let service = serve(
        Router::new()
            .route("/upstream", get(calls_peer))
            .with_state(common::client(&peer.uri())),
    )
    .await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{}/upstream", service.url()))
        .header("x-deadline-ms", "300")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let sent: u64 = peer.received_requests().await.unwrap()[0]
        .headers
        .get("x-deadline-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent <= 300, "the onward call was given {sent} ms");
}
