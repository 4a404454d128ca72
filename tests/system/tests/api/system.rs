//! The public API of API.md, end to end: six real binaries, real PostgreSQL, Redis and
//! SMTP, everything through the gateway over HTTP.
//!
//! One file: the public API end to end, over one set of running binaries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use system_tests::{PATIENCE, System};
use test_support::eventually;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A span as an OTLP collector received it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

/// Every span the stand-in collector has received so far.
async fn exported(collector: &MockServer) -> Vec<Exported> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut spans = Vec::new();
    for request in collector.received_requests().await.unwrap() {
        let export = ExportTraceServiceRequest::decode(request.body.as_slice()).unwrap();
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                    });
                }
            }
        }
    }
    spans
}

#[tokio::test]
async fn an_order_through_the_gateway_is_confirmed_paid_emailed_and_shown_everywhere() {
    // An OTLP/HTTP collector stands in for Jaeger.
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let system = System::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.uri()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let admin = system.admin().await;

    // A webhook receiver for confirmed orders, subscribed before anything happens.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let hook = system
        .post(
            "/webhooks",
            &admin,
            json!({"url": format!("{}/hook", receiver.uri()), "events": ["order.confirmed"],
                   "secret": "whsec-system-0123456789abcdef"}),
        )
        .await;
    assert_eq!(hook.status(), 201);
    let hook: Value = hook.json().await.unwrap();
    assert!(hook.get("secret").is_none(), "the secret is never echoed");

    let mug = system.product(&admin, 1200, 10).await;
    let ada = system.user("Ada").await;

    // Happy path: confirmed, stock down, one payment, one email, one notification. The
    // client starts a trace; it must come out of the far end of the saga.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let order = system
        .request(Method::POST, "/orders", Some(&ada.token))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"items": [{"product_id": mug, "quantity": 2}], "payment_method": "tok_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 202);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_cents"], 2400);
    let id = order["id"].as_str().unwrap();
    let confirmed = system.settled(&ada.token, id).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    let product = system.get(&format!("/products/{mug}"), &ada.token).await;
    assert_eq!(product["available"], 8);
    let payments = system.get("/payments", &ada.token).await;
    let payments = payments["data"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(payments[0]["amount_cents"], 2400);

    let emailed = eventually(PATIENCE, || async { !system.smtp.received().is_empty() }).await;
    assert!(emailed, "the confirmation email arrived");
    let mail = system.smtp.received();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, [ada.email.as_str()]);
    assert!(mail[0].header("Subject").unwrap().contains(id));

    let notifications = system.get("/notifications", &ada.token).await;
    let notifications = notifications["data"].as_array().unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0]["kind"], "order.confirmed");

    let delivered = eventually(PATIENCE, || async {
        !receiver.received_requests().await.unwrap().is_empty()
    })
    .await;
    assert!(delivered, "the webhook was called");
    let call = receiver.received_requests().await.unwrap().remove(0);
    assert_eq!(call.headers["x-event-name"], "order.confirmed");
    assert!(
        call.headers["x-signature"]
            .to_str()
            .unwrap()
            .starts_with("sha256=")
    );
    let envelope: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(envelope["data"]["order_id"], id);
    // gateway -> order (HTTP) -> order.created -> inventory -> inventory.reserved ->
    // payment -> payment.succeeded -> order -> order.confirmed -> notification: one trace.
    let traceparent = envelope["traceparent"].as_str().unwrap();
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(trace_id),
        "{traceparent}"
    );

    // And the spans the six exported over OTLP form one tree under the client's span.
    let services = [
        "gateway",
        "order",
        "user",
        "inventory",
        "payment",
        "notification",
    ];
    let everyone = eventually(PATIENCE, || async {
        let spans = exported(&collector).await;
        services.iter().all(|service| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.service == *service)
        })
    })
    .await;
    let spans: Vec<Exported> = exported(&collector)
        .await
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    assert!(
        everyone,
        "a span of the trace from each service: {spans:#?}"
    );
    for span in &spans {
        assert!(
            span.parent == "00f067aa0ba902b7" || spans.iter().any(|p| p.span_id == span.parent),
            "{span:?} hangs off a span that was never exported"
        );
    }
    for name in [
        "order.created process",
        "payment.succeeded process",
        "order.confirmed process",
    ] {
        assert!(spans.iter().any(|s| s.name == name), "{name} in {spans:#?}");
    }
    let hook_id = hook["id"].as_str().unwrap();
    let logged = eventually(PATIENCE, || async {
        let log = system
            .get(&format!("/webhooks/{hook_id}/deliveries"), &admin)
            .await;
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["status_code"] == 200)
    })
    .await;
    assert!(logged, "the delivery is in the log");

    // Declined card: cancelled, stock back, a declined payment.
    let declined = system.order(&ada, &mug, 3, "tok_declined").await;
    let declined = system
        .settled(&ada.token, declined["id"].as_str().unwrap())
        .await;
    assert_eq!(declined["status"], "cancelled");
    assert_eq!(declined["cancel_reason"], "payment_declined");
    let available = eventually(PATIENCE, || async {
        system.get(&format!("/products/{mug}"), &ada.token).await["available"] == 8
    })
    .await;
    assert!(available, "the declined order's stock came back");

    // Cancelling the confirmed order refunds it and restores the stock.
    let cancel = system
        .post(&format!("/orders/{id}/cancel"), &ada.token, json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    let refunded = eventually(PATIENCE, || async {
        let payments = system.get("/payments", &ada.token).await;
        payments["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["order_id"] == id && p["status"] == "refunded")
    })
    .await;
    assert!(refunded, "the payment was refunded");
    let order = system.get(&format!("/orders/{id}"), &ada.token).await;
    assert_eq!(order["cancel_reason"], "cancelled_by_user");
    let restored = eventually(PATIENCE, || async {
        system.get(&format!("/products/{mug}"), &ada.token).await["available"] == 10
    })
    .await;
    assert!(restored, "the stock is back to 10");

    // The dashboard gathers all of it; another user sees none of it.
    let dashboard = system.get("/dashboard", &ada.token).await;
    assert_eq!(dashboard["degraded"], json!([]));
    assert_eq!(dashboard["profile"]["email"], ada.email.as_str());
    assert_eq!(dashboard["orders"].as_array().unwrap().len(), 2);
    assert!(!dashboard["payments"].as_array().unwrap().is_empty());
    assert!(!dashboard["notifications"].as_array().unwrap().is_empty());
    let bob = system.user("Bob").await;
    let bobs = system.request(Method::GET, &format!("/orders/{id}"), Some(&bob.token));
    assert_eq!(bobs.send().await.unwrap().status(), 404);
    assert_eq!(
        system.get("/orders", &bob.token).await["data"],
        json!([]),
        "Bob sees no orders"
    );
}

#[tokio::test]
async fn the_gateway_limits_each_user_and_says_so_in_its_headers() {
    let system = System::start(&[("RATE_LIMIT_PER_MINUTE", "5")]).await;
    // Registration and login count against the client's address, not the user.
    let ada = system.user("Ada").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = system
            .request(Method::GET, "/orders", Some(&ada.token))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
        } else {
            assert!(response.headers().contains_key("ratelimit"));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    // Another user has a budget of their own.
    let bob = system.user("Bob").await;
    let response = system
        .request(Method::GET, "/orders", Some(&bob.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_inventory_service_killed_during_100_orders_and_restarted_loses_none() {
    const ORDERS: usize = 100;
    const STOCK: usize = 70;
    let system = System::start(&[("RATE_LIMIT_PER_MINUTE", "0")]).await;
    let admin = system.admin().await;
    let mug = system.product(&admin, 500, STOCK as i64).await;
    let ada = system.user("Ada").await;

    // 100 one-unit orders from 8 clients. While the inventory service is down the order
    // service cannot price an order and answers 503; the client retries with the same
    // Idempotency-Key, as a careful client does. Every request gets an answer: a
    // connection closed without one fails the test (`unwrap` on the send).
    let accepted = AtomicUsize::new(0);
    let first = std::sync::Mutex::new(None::<String>);
    let place = |n: usize| {
        let (system, ada, mug, accepted, first) = (&system, &ada, &mug, &accepted, &first);
        async move {
            let key = format!("order-{n}");
            loop {
                let response = system
                    .request(Method::POST, "/orders", Some(&ada.token))
                    .header("Idempotency-Key", &key)
                    .json(&json!({"items": [{"product_id": mug, "quantity": 1}],
                                  "payment_method": "tok_visa"}))
                    .send()
                    .await
                    .unwrap_or_else(|error| panic!("order {n}: no answer: {error:?}"));
                match response.status().as_u16() {
                    202 => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let order: Value = response.json().await.unwrap();
                        let id = order["id"].as_str().unwrap().to_owned();
                        first.lock().unwrap().get_or_insert_with(|| id.clone());
                        return id;
                    }
                    503 => tokio::time::sleep(Duration::from_millis(100)).await,
                    other => panic!("order {n}: unexpected {other}"),
                }
            }
        }
    };
    let orders = futures::stream::iter(0..ORDERS)
        .map(place)
        .buffer_unordered(8)
        .collect::<Vec<String>>();
    let crash = async {
        let started = eventually(PATIENCE, || async {
            accepted.load(Ordering::SeqCst) >= ORDERS / 2
        })
        .await;
        assert!(started, "orders were being accepted");
        // Half of the orders are in the saga: reservations in flight die with it.
        system.kill("inventory").await;
        // With inventory down, creates are refused by the order service (503), and the
        // order service stays open at the gateway for what needs no inventory.
        let first = first.lock().unwrap().clone().unwrap();
        let refused = system
            .request(Method::POST, "/orders", Some(&ada.token))
            .header("Idempotency-Key", "while-inventory-is-down")
            .json(&json!({"items": [{"product_id": mug, "quantity": 1}],
                          "payment_method": "tok_visa"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 503);
        for _ in 0..20 {
            for path in ["/orders".to_owned(), format!("/orders/{first}")] {
                let read = system
                    .request(Method::GET, &path, Some(&ada.token))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(read.status(), 200, "GET {path} with inventory down");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        system.restart("inventory").await;
    };
    let (ids, ()) = tokio::join!(orders, crash);
    assert_eq!(ids.len(), ORDERS);

    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut confirmed = Vec::new();
    for id in &ids {
        let order = system.settled(&ada.token, id).await;
        let outcome = format!("{}/{}", order["status"], order["cancel_reason"]);
        *outcomes.entry(outcome).or_default() += 1;
        if order["status"] == "confirmed" {
            confirmed.push(id.clone());
        }
    }
    assert_eq!(
        outcomes,
        HashMap::from([
            ("\"confirmed\"/null".to_owned(), STOCK),
            ("\"cancelled\"/\"out_of_stock\"".to_owned(), ORDERS - STOCK),
        ]),
        "every order settled, the stock sold exactly once"
    );
    let product = system.get(&format!("/products/{mug}"), &ada.token).await;
    assert_eq!(product["available"], 0);
    let payments = system.get("/payments?limit=1000", &ada.token).await;
    let payments = payments["data"].as_array().unwrap();
    assert_eq!(payments.len(), STOCK, "one payment per confirmed order");
    for payment in payments {
        assert_eq!(payment["status"], "succeeded");
        assert!(
            confirmed
                .iter()
                .any(|id| payment["order_id"] == id.as_str())
        );
    }
}
