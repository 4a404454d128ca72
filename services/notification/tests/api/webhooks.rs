//! Webhooks: signed deliveries to a real HTTP receiver, retries, restarts, and the
//! targets that are refused.

use crate::common;

use std::time::Duration;

use crate::common::{eventually, spawn_app, spawn_app_with};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use test_support::assert_problem;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec-test-0123456789abcdef";

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_receiver_gets_signed_deliveries_and_failures_are_retried_and_logged() {
    let app = spawn_app().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let id = app
        .webhook(
            &format!("{}/hook", receiver.uri()),
            &["order.confirmed"],
            SECRET,
        )
        .await;
    let ada = app.user("Ada").await;
    let event = app.confirm_order(&ada).await;
    app.cancel_order(&ada, "out_of_stock").await; // not subscribed
    app.quiet().await;

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4, "three failures, then the delivery");
    for request in &requests {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("x-event-name"), "order.confirmed");
        assert_eq!(header("x-event-id"), event.id.to_string());
        let timestamp = header("x-timestamp");
        let mut signed = timestamp.clone().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(&request.body);
        assert_eq!(
            header("x-signature"),
            format!("sha256={}", hmac_hex(SECRET, &signed))
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["id"], event.id.to_string());
        assert_eq!(body["type"], "order.confirmed");
        assert_eq!(body["data"]["user_id"], ada.id.to_string());
    }

    let log = app.deliveries(&id).await;
    assert_eq!(log.len(), 4);
    let mut attempts: Vec<(i64, i64)> = log
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    attempts.sort();
    assert_eq!(attempts, [(1, 500), (2, 500), (3, 500), (4, 200)]);
    assert!(
        log.iter()
            .all(|a| a["event_id"] == event.id.to_string() && a["event"] == "order.confirmed")
    );
    let delivered: Vec<&Value> = log
        .iter()
        .filter(|a| !a["delivered_at"].is_null())
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["attempt"], 4);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_the_retries_still_delivers() {
    let mut app = spawn_app_with(|config| config.delivery_backoff_base_ms = 500).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let id = app
        .webhook(&receiver.uri(), &["order.cancelled"], SECRET)
        .await;
    let ada = app.user("Ada").await;
    app.cancel_order(&ada, "cancelled_by_user").await;

    let first_failed = eventually(Duration::from_secs(10), || async {
        !app.deliveries(&id).await.is_empty()
    })
    .await;
    assert!(first_failed);
    app.restart().await;
    app.quiet().await;

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let log = app.deliveries(&id).await;
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["status_code"], 204);
}

/// Registering a webhook to each of `urls` is refused with 422 naming the `url`.
async fn assert_refused(app: &common::TestApp, urls: &[&str]) {
    for url in urls {
        let response = app
            .admin(Method::POST, "/webhooks")
            .json(&json!({"url": url, "events": ["order.confirmed"], "secret": SECRET}))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422).await;
        assert_eq!(problem["errors"][0]["field"], "url", "{url}");
    }
}

#[tokio::test]
async fn internal_targets_are_refused_by_default() {
    let app = spawn_app_with(|config| config.webhook_allow_private = false).await;
    assert_refused(
        &app,
        &[
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/hook",
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/hook",
            "http://[::1]/hook",
            "ftp://example.com/hook",
        ],
    )
    .await;
    let list: Value = app
        .admin(Method::GET, "/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn metadata_targets_are_refused_even_with_private_targets_allowed() {
    // The harness allows private targets (its receivers listen on loopback).
    let app = spawn_app_with(|config| config.webhook_allow_private = true).await;
    assert_refused(
        &app,
        &[
            "http://169.254.169.254/latest/meta-data",
            "http://100.100.100.200/latest/meta-data",
            "http://[fd00:ec2::254]/latest/meta-data",
            "http://[fe80::1]/hook",
            "http://[::ffff:169.254.169.254]/hook",
        ],
    )
    .await;

    // A target that passed at registration and points at metadata by delivery time is
    // refused then, and nothing is sent.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let id = app
        .webhook(
            &format!("{}/hook", receiver.uri()),
            &["order.confirmed"],
            SECRET,
        )
        .await;
    sqlx::query!("UPDATE webhooks SET url = 'http://169.254.169.254/latest/meta-data'")
        .execute(&app.pool)
        .await
        .unwrap();
    let ada = app.user("Ada").await;
    app.confirm_order(&ada).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !app.deliveries(&id).await.is_empty()
        })
        .await
    );
    app.quiet().await;
    let log = app.deliveries(&id).await;
    assert_eq!(log.len(), 1, "refused once, not retried: {log:?}");
    assert!(log[0]["status_code"].is_null());
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("link-local or cloud metadata"),
        "{log:?}"
    );
    assert!(receiver.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn webhooks_are_for_admins_and_never_show_their_secret() {
    let app = spawn_app().await;
    let user = uuid::Uuid::new_v4();
    let forbidden = app
        .request(Method::POST, "/webhooks", user, "user")
        .json(
            &json!({"url": "http://127.0.0.1:9/", "events": ["order.confirmed"], "secret": SECRET}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(forbidden, 403).await;
    let listing = app
        .request(Method::GET, "/webhooks", user, "user")
        .send()
        .await
        .unwrap();
    assert_problem(listing, 403).await;

    for (body, field) in [
        (
            json!({"url": "http://127.0.0.1:9/", "events": [], "secret": SECRET}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["order.shipped"], "secret": SECRET}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["order.confirmed"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"events": ["order.confirmed"], "secret": SECRET}),
            "url",
        ),
    ] {
        let response = app
            .admin(Method::POST, "/webhooks")
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
        assert!(!problem.to_string().contains(SECRET));
    }

    let id = app
        .webhook(
            "http://127.0.0.1:9/",
            &["order.confirmed", "payment.refunded"],
            SECRET,
        )
        .await;
    let list = test_support::http::text(app.admin(Method::GET, "/webhooks")).await;
    assert!(!list.contains(SECRET), "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["data"][0]["active"], true);
    assert_eq!(
        list["data"][0]["events"],
        json!(["order.confirmed", "payment.refunded"])
    );

    let deleted = app
        .admin(Method::DELETE, &format!("/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = app
        .admin(Method::DELETE, &format!("/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(again, 404).await;
    let log = app
        .admin(Method::GET, &format!("/webhooks/{id}/deliveries"))
        .send()
        .await
        .unwrap();
    assert_problem(log, 404).await;
}

#[tokio::test]
async fn with_polls_ten_minutes_apart_the_email_and_the_delivery_go_out_as_their_event_commits() {
    // Idle workers look for due work only every ten minutes: what they send within the
    // test's patience, they were woken for by the commit that queued it.
    let app = spawn_app_with(|config| config.delivery_poll_ms = 600_000).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    app.webhook(
        &format!("{}/hook", receiver.uri()),
        &["order.confirmed"],
        SECRET,
    )
    .await;
    let ada = app.user("Ada").await;
    let event = app.confirm_order(&ada).await;
    app.quiet().await;

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one delivery");
    assert_eq!(
        requests[0]
            .headers
            .get("x-event-id")
            .unwrap()
            .to_str()
            .unwrap(),
        event.id.to_string()
    );
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 1, "one email");
    assert_eq!(mail[0].to, [ada.email.as_str()]);
}
