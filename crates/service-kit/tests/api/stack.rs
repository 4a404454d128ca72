//! The shared middleware stack and server, with a router made for the test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use service_kit::server::Server;

async fn panics() -> &'static str {
    panic!("secret internals in the panic message")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

/// Whether each header a secret travels in arrived marked sensitive (never logged).
async fn sensitive(headers: axum::http::HeaderMap) -> String {
    ["authorization", "cookie", "x-service-key"]
        .map(|name| headers.get_all(name).iter().all(|v| v.is_sensitive()))
        .map(|marked| marked.to_string())
        .join(",")
}

async fn start(request_timeout: Duration) -> (service_kit::server::RunningServer, Arc<AtomicBool>) {
    let router = Router::new()
        .route("/panic", get(panics))
        .route("/slow", get(slow))
        .route("/sensitive", get(sensitive));
    let router = service_kit::middleware::apply(router, request_timeout);
    let listener = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let service = Server::new(listener, router, Duration::from_secs(5));
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    service.spawn_task("waits for shutdown", move |cancel| async move {
        cancel.cancelled().await;
        flag.store(true, Ordering::SeqCst);
    });
    (service.spawn(), stopped)
}

async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_without_its_message() {
    let (service, _) = start(Duration::from_secs(5)).await;
    let response = reqwest::get(format!("{}/panic", service.url()))
        .await
        .unwrap();
    let body = problem(response, 500).await;
    assert!(!body.to_string().contains("secret internals"));
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn secrets_reach_the_handler_marked_sensitive() {
    let (service, _) = start(Duration::from_secs(5)).await;
    let response = reqwest::Client::new()
        .get(format!("{}/sensitive", service.url()))
        .header("authorization", "Bearer secret")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-service-key", "key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "true,true,true");
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_504_problem() {
    let (service, _) = start(Duration::from_millis(100)).await;
    let response = reqwest::get(format!("{}/slow", service.url()))
        .await
        .unwrap();
    problem(response, 504).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_that_keeps_the_allow_header() {
    let (service, _) = start(Duration::from_secs(5)).await;
    let response = reqwest::Client::new()
        .post(format!("{}/slow", service.url()))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    problem(response, 405).await;
}

#[tokio::test]
async fn stopping_lets_an_in_flight_request_finish_and_stops_background_tasks() {
    let (service, task_stopped) = start(Duration::from_secs(5)).await;
    let url = format!("{}/slow", service.url());
    let request = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(150)).await;

    service.stop().await.unwrap();
    assert!(
        task_stopped.load(Ordering::SeqCst),
        "the background task was not stopped"
    );
    let response = request
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
}

#[tokio::test]
async fn a_caller_deadline_sooner_than_the_timeout_is_a_504_that_says_so() {
    let (service, _) = start(Duration::from_secs(5)).await;
    let response = reqwest::Client::new()
        .get(format!("{}/slow", service.url()))
        .header("x-deadline-ms", "100")
        .send()
        .await
        .unwrap();
    let body = problem(response, 504).await;
    assert!(
        body["detail"].as_str().unwrap().contains("deadline"),
        "{body}"
    );
    service.stop().await.unwrap();
}
