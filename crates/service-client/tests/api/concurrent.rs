//! Named calls in flight together.

use crate::common;

use std::time::{Duration, Instant};

use service_client::{ErrorKind, concurrent};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn slow_server(delay_ms: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("fine")
                .set_delay(Duration::from_millis(delay_ms)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn three_100ms_calls_take_about_as_long_as_one() {
    let (a, b, c) = (
        slow_server(100).await,
        slow_server(100).await,
        slow_server(100).await,
    );
    let (a, b, c) = (
        common::client(&a.uri()),
        common::client(&b.uri()),
        common::client(&c.uri()),
    );
    // Warm the connection pools so the measurement is of the calls, not of connecting.
    for client in [&a, &b, &c] {
        client.get("/ok").send().await.unwrap();
    }
    let started = Instant::now();
    let results = concurrent([
        ("a", a.get("/ok")),
        ("b", b.get("/ok")),
        ("c", c.get("/ok")),
    ])
    .await;
    let took = started.elapsed();
    assert_eq!(results.len(), 3);
    for name in ["a", "b", "c"] {
        assert_eq!(results[name].as_ref().unwrap().body.as_ref(), b"fine");
    }
    // In sequence they take 300 ms.
    assert!(took < Duration::from_millis(150), "took {took:?}");
}

#[tokio::test]
async fn one_failing_or_timing_out_leaves_the_others_intact() {
    let server = slow_server(100).await;
    let client = common::client(&server.uri());
    let results = concurrent([
        ("fine", client.get("/ok")),
        ("broken", client.get("/broken")),
        (
            "slow",
            client
                .get("/ok")
                .timeout(Duration::from_millis(20))
                .deadline(Duration::from_millis(50)),
        ),
    ])
    .await;
    assert_eq!(results["fine"].as_ref().unwrap().status, 200);
    assert_eq!(
        results["broken"].as_ref().unwrap_err().status().unwrap(),
        500
    );
    assert!(matches!(
        results["slow"].as_ref().unwrap_err().kind,
        ErrorKind::Timeout | ErrorKind::DeadlineExceeded
    ));
}
