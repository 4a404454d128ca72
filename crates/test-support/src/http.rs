//! Assertions on HTTP answers.

use serde_json::Value;

/// Asserts an RFC 9457 problem+json response with `status` (content type, `status`,
/// `title`, `detail` and `request_id` members) and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert!(body["request_id"].is_string(), "{body}");
    body
}

/// Sends `request` and returns its body as JSON, whatever its status.
pub async fn json(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("the service answers");
    response.json().await.expect("a JSON body")
}

/// Sends `request`, asserts the answer's `status` and returns its body as JSON.
pub async fn json_with_status(request: reqwest::RequestBuilder, status: u16) -> Value {
    let response = request.send().await.expect("the service answers");
    assert_eq!(response.status(), status);
    response.json().await.expect("a JSON body")
}

/// Sends `request` and returns its body as text, whatever its status.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("the service answers");
    response.text().await.expect("a text body")
}
