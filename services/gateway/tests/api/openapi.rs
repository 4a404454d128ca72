//! `GET /api/openapi.json`: an OpenAPI 3.1 document naming every route of API.md, and
//! the ops console's admin API.

use crate::common;

use serde_json::Value;

/// Every method and path of API.md's tables, then of the ops console's API (README,
/// "The ops console").
const API: &[(&str, &str)] = &[
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("get", "/api/auth/jwks"),
    ("get", "/api/users/me"),
    ("get", "/api/users/{id}"),
    ("patch", "/api/users/{id}"),
    ("get", "/api/products"),
    ("get", "/api/products/{id}"),
    ("post", "/api/products"),
    ("post", "/api/products/{id}/stock"),
    ("post", "/api/orders"),
    ("get", "/api/orders"),
    ("get", "/api/orders/{id}"),
    ("post", "/api/orders/{id}/cancel"),
    ("get", "/api/payments"),
    ("get", "/api/notifications"),
    ("post", "/api/webhooks"),
    ("get", "/api/webhooks"),
    ("delete", "/api/webhooks/{id}"),
    ("get", "/api/webhooks/{id}/deliveries"),
    ("get", "/api/dashboard"),
    ("get", "/api/openapi.json"),
    ("get", "/api/ops/services"),
    ("get", "/api/ops/orders/{id}/journey"),
    ("get", "/api/ops/throughput.svg"),
    ("post", "/api/ops/dead-letters/{action}"),
];

#[tokio::test]
async fn the_document_is_served_without_a_token_and_names_every_route() {
    let gw = common::spawn(1).await;
    let response = gw
        .client
        .get(gw.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in API {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        API.len(),
        "nothing documented that API.md does not have"
    );
    // Every reference resolves.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }
}

#[tokio::test]
async fn the_asyncapi_document_is_served_without_a_token_and_is_the_one_in_docs() {
    let gw = common::spawn(1).await;
    let response = gw
        .client
        .get(gw.url("/api/asyncapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    let copy: Value = serde_json::from_str(include_str!("../../../../docs/asyncapi.json")).unwrap();
    assert_eq!(served, copy);
    assert_eq!(served["asyncapi"], "3.1.0");
    assert_eq!(
        served["components"]["messages"].as_object().unwrap().len(),
        10
    );
}
