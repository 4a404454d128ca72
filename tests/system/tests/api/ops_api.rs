//! The ops API behind the console, over plain HTTP: admins only, rate limited like any
//! `/api` request, and a problem for everything it cannot do.
#![allow(clippy::unwrap_used)] // test-only code: a failed unwrap is a failed test

use reqwest::Method;
use serde_json::{Value, json};
use system_tests::System;

/// `r`, the requests left, from a `RateLimit` header.
fn remaining(response: &reqwest::Response) -> u64 {
    let header = response.headers()["ratelimit"].to_str().unwrap();
    let r = header
        .split(';')
        .find_map(|p| p.strip_prefix("r="))
        .unwrap();
    r.parse().unwrap()
}

#[tokio::test]
async fn the_ops_api_is_for_admins_counts_against_their_limit_and_refuses_what_it_cannot_do() {
    let system = System::start(&[]).await;
    let user = system.user("Ada").await;
    let admin = system.admin().await;
    let ops = |method: Method, path: &str, token: Option<&str>| {
        system.request(method, &format!("/ops{path}"), token)
    };

    // The page itself holds no data and says where scripts may come from.
    let page = system
        .http
        .get(format!("{}/console", system.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));

    // No token, or not an admin: nothing, reads and actions alike.
    let letter = json!({"service": "order", "stream": "events:order", "id": "1-0"});
    for (method, path) in [
        (Method::GET, "/services"),
        (Method::POST, "/dead-letters/replay"),
    ] {
        let anonymous = ops(method.clone(), path, None)
            .json(&letter)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{method} {path}");
        let plain = ops(method.clone(), path, Some(&user.token))
            .json(&letter)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), 403, "{method} {path}");
    }

    // An admin's console requests count against the admin's limit like any other.
    let first = ops(Method::GET, "/services", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = ops(Method::GET, "/services", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(remaining(&second), remaining(&first) - 1);
    let reports: Value = second.json().await.unwrap();
    assert_eq!(reports["data"].as_array().unwrap().len(), 6);

    let chart = ops(Method::GET, "/throughput.svg", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    assert!(chart.text().await.unwrap().starts_with("<svg"));

    // What it cannot do, it says so.
    let cases = [
        (Method::GET, "/dead-letters/replay", json!(null), 405),
        (Method::POST, "/dead-letters/purge", letter.clone(), 404),
        (
            Method::POST,
            "/dead-letters/replay",
            json!({"service": "order", "stream": "s", "id": "x"}),
            422,
        ),
        (
            Method::POST,
            "/dead-letters/replay",
            json!({"service": "nobody", "stream": "s", "id": "1-0"}),
            404,
        ),
        (Method::POST, "/dead-letters/discard", letter.clone(), 404),
        (
            Method::GET,
            &format!("/orders/{}/journey", uuid::Uuid::new_v4()),
            json!(null),
            404,
        ),
        (Method::GET, "/orders/not-an-id/journey", json!(null), 404),
        (Method::DELETE, "/services", json!(null), 405),
    ];
    for (method, path, body, status) in cases {
        let mut request = ops(method.clone(), path, Some(&admin));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), status, "{method} {path}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
    }
}
