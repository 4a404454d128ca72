//! Retries: only what is safe, only on what may pass, within the deadline and budget.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::json;
use service_client::{ErrorKind, Fault};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn requests_received(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

#[tokio::test]
async fn a_get_is_retried_on_503_until_it_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/thing"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/thing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;

    let response = common::client(&server.uri())
        .get("/thing")
        .send()
        .await
        .unwrap();
    assert_eq!(response.attempts, 3);
    assert_eq!(response.json::<serde_json::Value>().unwrap()["ok"], true);
    assert_eq!(requests_received(&server).await.len(), 3);
}

#[tokio::test]
async fn a_post_without_an_idempotency_key_is_not_retried_on_503() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let error = common::client(&server.uri())
        .post("/orders")
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert!(!error.retried());
    assert_eq!(requests_received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_post_without_an_idempotency_key_is_not_retried_after_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let error = common::client(&server.uri())
        .post("/orders")
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Timeout), "{error}");
    assert_eq!(requests_received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_retried_with_the_same_key_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let response = common::client(&server.uri())
        .post("/orders")
        .json(&json!({"items": [1, 2, 3]}))
        .idempotency_key("order-key-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, 201);
    let received = requests_received(&server).await;
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.headers.get("idempotency-key").unwrap(),
            "order-key-1"
        );
        assert_eq!(request.body, received[0].body);
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&received[1].body).unwrap(),
        json!({"items": [1, 2, 3]})
    );
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for status in [400u16, 404, 409, 422] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_string("nope"))
            .mount(&server)
            .await;
        let error = common::client(&server.uri())
            .get("/x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.status().unwrap().as_u16(), status);
        assert_eq!(error.fault(), Fault::Downstream);
        assert_eq!(error.body().unwrap().as_ref(), b"nope");
        assert_eq!(
            requests_received(&server).await.len(),
            1,
            "{status} was retried"
        );
    }
}

#[tokio::test]
async fn a_429_with_retry_after_one_second_waits_about_a_second() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let started = Instant::now();
    let response = common::client(&server.uri())
        .get("/x")
        .deadline(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.attempts, 2);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_deadline_ends_the_call_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = common::client_with(&server.uri(), |p| {
        p.retry_after_max = Duration::from_secs(7200)
    })
    .get("/x")
    .deadline(Duration::from_secs(2))
    .send()
    .await
    .unwrap_err();
    assert_eq!(error.status().unwrap().as_u16(), 429);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it waited for the Retry-After"
    );
    assert_eq!(requests_received(&server).await.len(), 1);
}

#[tokio::test]
async fn a_peer_that_hangs_fails_within_the_deadline_and_gets_the_deadline_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = common::client_with(&server.uri(), |p| {
        p.attempt_timeout = Duration::from_millis(150);
        p.max_attempts = 10;
    })
    .get("/x")
    .deadline(Duration::from_millis(400))
    .send()
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(error.kind, ErrorKind::Timeout | ErrorKind::DeadlineExceeded),
        "{error}"
    );
    assert!(
        took >= Duration::from_millis(400) - Duration::from_millis(50)
            && took < Duration::from_millis(900),
        "took {took:?}"
    );

    let received = requests_received(&server).await;
    assert!(received.len() >= 2, "it did not retry the timeouts");
    let first: u64 = received[0]
        .headers
        .get("x-deadline-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first <= 400 && first > 300, "deadline header {first}");
    let last: u64 = received
        .last()
        .unwrap()
        .headers
        .get("x-deadline-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last < first, "the remaining budget shrinks across attempts");
}

#[tokio::test]
async fn every_request_carries_the_peer_key_and_the_callers_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header(
            "authorization",
            format!("Bearer {}", common::PEER_KEY).as_str(),
        ))
        .and(header("x-service-name", "tester"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let response = common::client(&server.uri())
        .get("/x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn an_unreachable_peer_is_a_transport_error_retried_until_attempts_run_out() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = common::client(&format!("http://127.0.0.1:{port}"))
        .get("/x")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Transport(_)), "{error}");
    assert_eq!(error.attempts, 3);
    assert_eq!(error.fault(), Fault::Upstream);
}

#[tokio::test]
async fn a_failing_peer_gets_no_retry_storm_from_a_thousand_calls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let client = common::client_with(&server.uri(), |p| {
        p.max_attempts = 5;
        p.retry_budget_ratio = 0.2;
        p.retry_budget_min_per_second = 1;
    });
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/x").send().await })
        })
        .collect();
    let mut exhausted = 0;
    for call in calls {
        if matches!(
            call.await.unwrap().unwrap_err().kind,
            ErrorKind::RetryBudgetExhausted(_)
        ) {
            exhausted += 1;
        }
    }
    let sent = requests_received(&server).await.len();
    // TpsBudget's floor: min_per_second over its 10 s window.
    let floor = 10;
    assert!(
        sent <= (1000.0 * 1.2) as usize + floor,
        "{sent} requests for 1,000 calls"
    );
    assert!(sent > 1000, "no retries at all: {sent}");
    assert!(exhausted > 0);
}

#[tokio::test]
async fn the_path_and_query_are_appended_to_the_base_url_and_its_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/prefix/items/42"))
        .and(wiremock::matchers::query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = common::client(&format!("{}/prefix/", server.uri()));
    let response = client.get("/items/42?page=2").send().await.unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_base_url_that_is_not_http_is_refused_up_front() {
    let peer = common::peer("mailto:someone@example.com", &common::settings());
    let error = service_client::Client::new("tester", peer).unwrap_err();
    assert!(
        matches!(error.kind, ErrorKind::InvalidRequest(_)),
        "{error}"
    );
}
