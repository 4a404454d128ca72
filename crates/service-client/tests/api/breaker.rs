//! The circuit breaker, end to end: open means no request reaches the peer.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use service_client::{BreakerState, ErrorKind};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn breaker_client(url: &str) -> service_client::Client {
    common::client_with(url, |p| {
        p.max_attempts = 1;
        p.breaker.consecutive_failures = 3;
        p.breaker.open_wait = Duration::from_millis(200);
        p.breaker.open_wait_max = Duration::from_secs(5);
        p.breaker.probes = 2;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn it_opens_after_the_failures_refuses_without_the_network_then_lets_exactly_the_probes_through()
 {
    let server = MockServer::start().await;
    let failing = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount_as_scoped(&server)
        .await;
    let client = breaker_client(&server.uri());
    for _ in 0..3 {
        client.get("/x").send().await.unwrap_err();
    }
    assert_eq!(client.breaker().state(), BreakerState::Open);

    let refused = client.get("/x").send().await.unwrap_err();
    assert!(matches!(refused.kind, ErrorKind::CircuitOpen));
    assert_eq!(refused.attempts, 0);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "a request reached the peer while open"
    );
    drop(failing);

    // Healthy again, but slow enough that every racer arrives while probes are in flight.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(200)))
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(150));
    let racers: Vec<_> = (0..150)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.get("/x").send().await
            })
        })
        .collect();
    let mut passed = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => passed += 1,
            Err(error) => assert!(matches!(error.kind, ErrorKind::CircuitOpen), "{error}"),
        }
    }
    assert_eq!(passed, 2, "exactly the configured probes pass");
    assert_eq!(server.received_requests().await.unwrap().len(), 3 + 2);
    assert_eq!(
        client.breaker().state(),
        BreakerState::Closed,
        "successful probes close it"
    );
    client.get("/x").send().await.unwrap();
}

#[tokio::test]
async fn a_failed_probe_reopens_it_for_longer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let client = breaker_client(&server.uri());
    for _ in 0..3 {
        client.get("/x").send().await.unwrap_err();
    }
    assert_eq!(client.breaker().state(), BreakerState::Open);
    pass_time(Duration::from_millis(220)).await;
    assert_eq!(client.breaker().state(), BreakerState::HalfOpen);
    client.get("/x").send().await.unwrap_err();
    assert_eq!(client.breaker().state(), BreakerState::Open);
    // The first wait was 200 ms; the second is 400 ms.
    pass_time(Duration::from_millis(250)).await;
    assert_eq!(client.breaker().state(), BreakerState::Open);
    pass_time(Duration::from_millis(200)).await;
    assert_eq!(client.breaker().state(), BreakerState::HalfOpen);
}

/// Moves the breaker's clock (tokio's) on without waiting. The clock runs again at
/// once, so the requests after it meet real time-outs on a real socket.
async fn pass_time(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn client_errors_do_not_open_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let client = breaker_client(&server.uri());
    for _ in 0..10 {
        client.get("/x").send().await.unwrap_err();
    }
    assert_eq!(client.breaker().state(), BreakerState::Closed);
}

/// The process's breakers as the ops report lists them, for `peer`.
fn listed(peer: &str) -> Vec<service_client::PeerBreaker> {
    service_client::breakers()
        .into_iter()
        .filter(|b| b.peer == peer)
        .collect()
}

#[tokio::test]
async fn the_ops_report_lists_each_peers_breaker_the_worst_of_its_clients_and_forgets_dropped_ones()
{
    const PEER: &str = "listed-peer";
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let named = |p: &mut service_client::PeerConfig| {
        p.name = PEER;
        p.max_attempts = 1;
        p.breaker.consecutive_failures = 3;
        p.breaker.open_wait = Duration::from_secs(30);
    };
    let healthy = common::client_with(&server.uri(), named);
    let failing = common::client_with(&server.uri(), named);
    let shown = listed(PEER);
    assert_eq!(shown.len(), 1, "one line per peer: {shown:?}");
    assert_eq!(
        (shown[0].state.as_str(), shown[0].next_probe_in_ms),
        ("closed", None)
    );

    for _ in 0..3 {
        failing.get("/x").send().await.unwrap_err();
    }
    let shown = listed(PEER);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].state, "open", "the worst of the peer's breakers");
    let next_probe = shown[0].next_probe_in_ms.unwrap();
    assert!(
        next_probe > 0 && next_probe <= 30_000,
        "the wait before the next probe: {next_probe}"
    );

    drop(failing);
    let shown = listed(PEER);
    assert_eq!(
        shown[0].state, "closed",
        "a dropped client's breaker is gone"
    );
    drop(healthy);
    assert!(listed(PEER).is_empty());
}
