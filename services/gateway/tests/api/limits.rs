//! Exact rate limits across replicas, their headers, the fallback without Redis, and
//! the dashboard.

use std::time::{Duration, Instant};

use crate::common::{answer_everything, spawn, spawn_with};
use serde_json::{Value, json};
use service_kit::config::RedisUrl;
use test_support::{TestRedis, assert_problem};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn one_user_racing_over_two_gateway_processes_gets_exactly_the_limit() {
    let gw = spawn(1).await;
    answer_everything(&gw.order).await;
    let (_, token) = gw.signed_in_user().await;
    let (_, other) = gw.signed_in_user().await;
    let ((_first, first_url), (_second, second_url)) = (gw.process().await, gw.process().await);
    let urls = [first_url, second_url];

    let requests = (0..150).map(|i| {
        let url = format!("{}/api/orders", urls[i % 2]);
        gw.client.get(url).bearer_auth(&token).send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut passed = 0;
    let mut remaining = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(
            header(&response, "ratelimit-policy"),
            "\"default\";q=100;w=60"
        );
        assert_eq!(header(&response, "x-ratelimit-limit"), "100");
        match response.status().as_u16() {
            200 => {
                passed += 1;
                remaining.push(
                    header(&response, "x-ratelimit-remaining")
                        .parse::<u32>()
                        .unwrap(),
                );
            }
            429 => {
                let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
                assert!((1..=60).contains(&retry_after));
                assert_eq!(header(&response, "x-ratelimit-remaining"), "0");
                assert!(header(&response, "ratelimit").starts_with("\"default\";r=0;t="));
                assert_problem(response, 429).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 100, "exactly the limit passes");
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..100).collect::<Vec<u32>>(),
        "each admitted request saw its own count"
    );

    let theirs = gw.get("/api/orders", Some(&other)).await;
    assert_eq!(theirs.status(), 200, "another user is unaffected");
    assert_eq!(header(&theirs, "x-ratelimit-remaining"), "99");
}

#[tokio::test]
async fn without_a_token_the_client_ip_counts_and_a_spoofed_forwarded_for_changes_nothing() {
    let gw = spawn_with(1, |config| config.rate_limit_per_minute = 5).await;
    for i in 0..5 {
        let response = gw
            .client
            .get(gw.url("/api/auth/jwks"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let spoofed = gw
        .client
        .get(gw.url("/api/auth/jwks"))
        .header("x-forwarded-for", "198.51.100.77")
        .send()
        .await
        .unwrap();
    assert_problem(spoofed, 429).await;
}

#[tokio::test]
async fn refused_and_unknown_requests_count_against_the_client_ip_and_say_so() {
    let gw = spawn_with(1, |config| config.rate_limit_per_minute = 4).await;
    let mut seen = Vec::new();
    for (path, token) in [
        ("/api/orders", Some("not-a-token")),
        ("/api/orders", None),
        ("/api/no-such-thing", None),
        ("/api/orders", Some("not-a-token")),
        ("/api/orders", Some("not-a-token")),
    ] {
        let response = gw.get(path, token).await;
        seen.push((
            response.status().as_u16(),
            header(&response, "x-ratelimit-remaining"),
        ));
        assert_eq!(
            header(&response, "ratelimit-policy"),
            "\"default\";q=4;w=60"
        );
    }
    assert_eq!(
        seen,
        [(401, "3"), (401, "2"), (404, "1"), (401, "0"), (429, "0")]
            .map(|(status, remaining)| (status, remaining.to_owned()))
    );
}

#[tokio::test]
async fn with_redis_down_each_gateway_still_limits_and_serves() {
    let mut redis = TestRedis::start().await;
    let url = redis.url();
    let gw = spawn_with(1, |config| {
        config.redis.redis_url = RedisUrl(url.clone());
        config.rate_limit_per_minute = 3;
    })
    .await;
    answer_everything(&gw.order).await;
    let (_, token) = gw.signed_in_user().await;
    redis.stop().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = gw.get("/api/orders", Some(&token)).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn the_dashboard_degrades_per_backend_and_fails_only_when_all_do() {
    let mut gw = spawn_with(1, |config| config.dashboard_timeout_ms = 400).await;
    let (id, token) = gw.signed_in_user().await;
    let orders = json!({"data": [
        {"id": "o1", "status": "confirmed", "total_cents": 1200},
        {"id": "o2", "status": "cancelled", "total_cents": 500}
    ]});
    Mock::given(path("/orders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(orders))
        .mount(&gw.order)
        .await;
    Mock::given(path("/notifications"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "n1"}]})))
        .mount(&gw.notification)
        .await;
    // The payment service hangs.
    Mock::given(path("/payments"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&gw.payment)
        .await;

    let started = Instant::now();
    let response = gw.get("/api/dashboard", Some(&token)).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    let dashboard: Value = response.json().await.unwrap();
    assert_eq!(dashboard["profile"]["id"], id.to_string());
    assert_eq!(dashboard["orders"].as_array().unwrap().len(), 2);
    assert_eq!(dashboard["payments"], json!([]));
    assert_eq!(dashboard["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(
        dashboard["stats"],
        json!({"orders_count": 2, "total_spent_cents": 1200})
    );
    assert_eq!(dashboard["degraded"], json!(["payments"]));
    // Generous: the point is that it does not wait for the 10 s backend.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // Every backend failing, the user service stopped (tokens still verify: the
    // gateway holds the keys).
    for server in [&gw.order, &gw.notification] {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(server)
            .await;
    }
    gw.stop_user_service().await;
    let response = gw.get("/api/dashboard", Some(&token)).await;
    assert_problem(response, 503).await;
}
