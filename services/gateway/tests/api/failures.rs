//! The gateway when things go wrong: a service whose dependency is down, a service too
//! slow to answer, clients that send their bodies late or ask to be told to send them.
//! Every request gets an answer, and one sick route never closes a whole service.

use std::time::Duration;

use crate::common::{RawConnection, spawn, spawn_with};
use test_support::assert_problem;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_service_answering_503_for_its_dependency_stays_reachable_on_its_other_routes() {
    let gw = spawn(1).await;
    // The order service with its inventory down: creates are refused by the service
    // itself (its own breaker), reads work.
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(
            ResponseTemplate::new(503).set_body_raw(
                serde_json::json!({
                    "type": "about:blank", "title": "Service Unavailable", "status": 503,
                    "detail": "The inventory service is unavailable.", "request_id": "r1"
                })
                .to_string(),
                "application/problem+json",
            ),
        )
        .mount(&gw.order)
        .await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": []})))
        .mount(&gw.order)
        .await;
    Mock::given(method("GET"))
        .and(path("/orders/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;
    let bearer = format!("Bearer {token}");

    // Far more than the breaker's five consecutive failures.
    for _ in 0..20 {
        let create = gw
            .client
            .post(gw.url("/api/orders"))
            .header("authorization", &bearer)
            .json(&serde_json::json!({"items": []}))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(create, 503).await;
        assert_eq!(
            problem["detail"], "The inventory service is unavailable.",
            "the service's own answer, not the gateway's"
        );
        let broken = gw.get("/api/orders/broken", Some(&token)).await;
        assert_eq!(broken.status(), 500);
        let read = gw.get("/api/orders", Some(&token)).await;
        assert_eq!(read.status(), 200, "reads keep working through the gateway");
    }
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_is_a_504_and_counts_against_it() {
    // The request's time limit ends the wait; having waited past the breaker's
    // slow-call time, the call counts as the service's failure.
    let gw = spawn_with(1, |config| {
        config.http.request_timeout_seconds = 1;
        config.client.http_client_breaker_slow_call_ms = 500;
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;

    // Five consecutive failures (the default) open the breaker.
    for _ in 0..5 {
        let slow = gw.get("/api/orders", Some(&token)).await;
        let problem = assert_problem(slow, 504).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("too long"),
            "{problem}"
        );
    }
    let calls = gw.order.received_requests().await.unwrap().len();
    let open = gw.get("/api/orders", Some(&token)).await;
    let problem = assert_problem(open, 503).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("order"),
        "{problem}"
    );
    assert_eq!(
        gw.order.received_requests().await.unwrap().len(),
        calls,
        "the open breaker answered without calling"
    );
}

#[tokio::test]
async fn a_client_that_leaves_early_is_not_the_services_failure() {
    let gw = spawn_with(1, |config| {
        config.client.http_client_breaker_slow_call_ms = 2000
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    for _ in 0..8 {
        let gone = impatient
            .get(gw.url("/api/orders"))
            .bearer_auth(&token)
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up first");
    }
    // The breaker stayed shut: a patient client is answered by the service.
    let answered = gw.get("/api/orders", Some(&token)).await;
    assert_eq!(answered.status(), 200);
}

/// A POST of `body` whose head and body leave in two writes, `pause` apart.
async fn post_in_two_parts(
    connection: &mut RawConnection,
    path: &str,
    extra: &str,
    body: &[u8],
    pause: Duration,
) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{extra}\r\n",
        body.len()
    );
    connection.send(head.as_bytes()).await;
    tokio::time::sleep(pause).await;
    connection.send(body).await;
}

#[tokio::test]
async fn answers_made_before_the_body_arrives_leave_the_connection_usable() {
    let gw = spawn(1).await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;
    let bearer = format!("authorization: Bearer {token}\r\n");
    // Open the order service's breaker: from then on the gateway answers order requests
    // itself, without reading their bodies.
    let gw_down = spawn_with(1, |config| {
        config.order_service.order_service_url = "http://127.0.0.1:9".to_owned();
        config.client.http_client_breaker_consecutive_failures = 1;
    })
    .await;
    let (_, other_token) = gw_down.signed_in_user().await;
    let other_bearer = format!("authorization: Bearer {other_token}\r\n");
    let order = br#"{"items":[{"product_id":"00000000-0000-0000-0000-000000000000","quantity":1}],"payment_method":"tok_visa"}"#;
    let mut opening = RawConnection::open(&gw_down.url("")).await;
    post_in_two_parts(
        &mut opening,
        "/api/orders",
        &other_bearer,
        order,
        Duration::ZERO,
    )
    .await;
    assert_eq!(opening.answer().await.unwrap().status, 503);

    // Each early answer kind, many times over, each on a connection that then carries
    // another request: the body arriving after the answer must not cost either.
    for round in 0..10 {
        let cases: [(&str, &str, &str, u16); 3] = [
            (&gw.url(""), "/api/orders", "", 401),
            (&gw.url(""), "/api/nowhere", &bearer, 404),
            (&gw_down.url(""), "/api/orders", &other_bearer, 503),
        ];
        for (base, target, headers, status) in cases {
            let mut connection = RawConnection::open(base).await;
            for turn in 0..3 {
                post_in_two_parts(
                    &mut connection,
                    target,
                    headers,
                    order,
                    Duration::from_millis(20),
                )
                .await;
                let answer = connection.answer().await.unwrap_or_else(|| {
                    panic!("round {round}, {target} turn {turn}: closed without an answer")
                });
                assert_eq!(answer.status, status, "{target}");
                assert_eq!(
                    answer.header("connection"),
                    None,
                    "the body was read: the connection stays"
                );
            }
            // And a request that reaches its service still goes through on it.
            connection
                .send(
                    format!("GET /api/products HTTP/1.1\r\nhost: gateway\r\n{bearer}\r\n")
                        .as_bytes(),
                )
                .await;
            if base == gw.url("") {
                let answer = connection.answer().await.unwrap();
                assert_ne!(answer.status, 0);
            }
        }
    }
}

#[tokio::test]
async fn a_body_the_client_waits_to_be_asked_for_goes_through_at_every_size() {
    let gw = spawn(1).await;
    // The service reads the whole body before it answers, as the order service does.
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(|request: &wiremock::Request| {
            ResponseTemplate::new(201).set_body_string(request.body.len().to_string())
        })
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;
    let bearer = format!("authorization: Bearer {token}\r\n");

    for size in [1_000, 60_000, 300_000, 900_000] {
        let body = vec![b'x'; size];
        // As curl does: the head, then the body once the gateway says `100 Continue`.
        let mut connection = RawConnection::open(&gw.url("")).await;
        let head = format!(
            "POST /api/orders HTTP/1.1\r\nhost: gateway\r\ncontent-length: {size}\r\n\
             expect: 100-continue\r\n{bearer}\r\n"
        );
        connection.send(head.as_bytes()).await;
        let go_on = tokio::time::timeout(Duration::from_secs(5), connection.answer())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(go_on.status, 100, "{size}");
        connection.send(&body).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), connection.answer())
            .await
            .unwrap_or_else(|_| panic!("no answer for {size} bytes"))
            .unwrap();
        assert_eq!(
            (answer.status, answer.body),
            (201, size.to_string().into_bytes()),
            "{size}"
        );

        // As clients that do not wait do: head and body at once, the header still set.
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            gw.client
                .post(gw.url("/api/orders"))
                .header("authorization", format!("Bearer {token}"))
                .header("expect", "100-continue")
                .body(body)
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer for {size} bytes sent at once"))
        .unwrap();
        assert_eq!(answer.status(), 201);
        assert_eq!(answer.text().await.unwrap(), size.to_string());
    }
}
