//! `/healthz`, `/readyz`, `/metrics` and the request id, as every service serves them.

use crate::common::{assert_problem, spawn_app};
use reqwest::Method;

#[tokio::test]
async fn readyz_is_ok_then_503_naming_postgres_once_the_database_is_gone_and_the_gauge_follows() {
    let app = spawn_app().await;
    let scrape = || async {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap();
        text.text().await.unwrap()
    };
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(series(&scrape().await, "service_ready"), 1.0);

    app.db.drop_now().await;
    let not_ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let problem = assert_problem(not_ready, 503).await;
    assert_eq!(problem["failing"], serde_json::json!(["postgres"]));
    let text = scrape().await;
    assert!(text.contains("service_ready 0"), "{text}");

    let alive = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);
    assert_eq!(
        alive.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
}

/// The value of one series in Prometheus text, 0 when absent.
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_this_tests_own_requests_by_route_template() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let key = r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#;
    let before = series(&scrape().await, key);
    for _ in 0..3 {
        let response = app
            .as_user(&user, Method::GET, &format!("/users/{}", user.id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let text = scrape().await;
    assert!(series(&text, key) >= before + 3.0, "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("http_requests_in_flight"));
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_any_other_is_replaced() {
    let app = spawn_app().await;
    let send = |id: Option<&[u8]>| {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = id {
            request = request.header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            );
        }
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(send(Some(b"abc-123")).await, "abc-123");
    let longest = "x".repeat(128);
    assert_eq!(send(Some(longest.as_bytes())).await, longest);

    let generated = send(None).await;
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let too_long = "x".repeat(129);
    for bad in [
        too_long.as_bytes(),
        b"tab\there",
        b"space here",
        b"caf\xc3\xa9",
    ] {
        let replaced = send(Some(bad)).await;
        assert!(
            uuid::Uuid::parse_str(&replaced).is_ok(),
            "{bad:?} became {replaced}"
        );
    }
}

#[tokio::test]
async fn the_request_id_travels_in_problem_bodies() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/no/such/route")
        .header("x-request-id", "problem-42")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 404).await;
    assert_eq!(problem["request_id"], "problem-42");
}
