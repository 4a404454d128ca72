//! Notifications and their email, against a real SMTP server.

use crate::common;

use std::time::Duration;

use crate::common::{eventually, spawn_app};
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn a_confirmed_order_sends_one_email_to_its_user_even_when_the_event_comes_twice() {
    let app = spawn_app().await;
    let ada = app.user("Ada <script>").await;
    let event = app.confirm_order(&ada).await;
    // Redelivered: the same event (same id) once more.
    app.publish(contracts::events::streams::ORDER, &event).await;
    let order_id = event.data["order_id"].as_str().unwrap().to_owned();

    app.quiet().await;
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 1, "exactly one email");
    let email = &mail[0];
    assert_eq!(email.to, [ada.email.as_str()]);
    let subject = email.header("Subject").unwrap();
    assert!(subject.contains(&order_id), "{subject}");
    assert_eq!(
        email.header("Message-ID").unwrap(),
        format!("<{}@switchyard>", event.id)
    );
    assert!(email.data.contains("multipart/alternative"));
    assert!(email.data.contains("text/html"));
    assert!(
        email.data.contains("Ada &lt;script&gt;"),
        "the name is escaped in HTML"
    );
    assert!(email.data.contains("24.00 USD"));

    let list: Value = app
        .request(Method::GET, "/notifications", ada.id, "user")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let notifications = list["data"].as_array().unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0]["kind"], "order.confirmed");
    assert_eq!(notifications[0]["channel"], "email");
    assert_eq!(notifications[0]["subject"], subject.as_str());
}

#[tokio::test]
async fn with_smtp_down_for_a_while_every_email_arrives_once_it_returns() {
    let mut app = spawn_app().await;
    let ada = app.user("Ada").await;
    app.smtp.stop();
    let events = [
        app.confirm_order(&ada).await,
        app.confirm_order(&ada).await,
        app.cancel_order(&ada, "payment_declined").await,
    ];
    // Let every email fail at least twice.
    let failing = eventually(Duration::from_secs(20), || async {
        let tried: i64 = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM emails WHERE status = 'pending' AND attempts >= 2"#
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        tried == 3
    })
    .await;
    assert!(failing, "the sends were attempted and failed");
    assert!(app.smtp.received().is_empty());

    app.smtp.start_again();
    app.quiet().await;
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 3, "none lost, none doubled");
    let mut ids: Vec<String> = mail
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = events
        .iter()
        .map(|e| format!("<{}@switchyard>", e.id))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn users_see_only_their_own_notifications() {
    let app = spawn_app().await;
    let (ada, bob) = (app.user("Ada").await, app.user("Bob").await);
    app.confirm_order(&ada).await;
    app.cancel_order(&ada, "out_of_stock").await;
    app.confirm_order(&bob).await;
    app.quiet().await;

    let list = |id, roles: &'static str| {
        let request = app.request(Method::GET, "/notifications", id, roles);
        async move {
            let list: Value = request.send().await.unwrap().json().await.unwrap();
            list["data"].as_array().unwrap().clone()
        }
    };
    let adas = list(ada.id, "user").await;
    assert_eq!(adas.len(), 2);
    assert_eq!(adas[0]["kind"], "order.cancelled", "newest first");
    assert_eq!(list(bob.id, "user").await.len(), 1);
    assert!(
        list(uuid::Uuid::new_v4(), "user,admin").await.is_empty(),
        "notifications are personal, for admins too"
    );
    assert_eq!(app.smtp.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_stored_together_take_effect_once_though_an_event_among_them_always_fails() {
    use contracts::events::{OrderConfirmed, streams, types};
    use event_bus::{Envelope, Publisher};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let app = spawn_app().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    app.webhook(
        &format!("{}/hook", receiver.uri()),
        &["order.confirmed"],
        "whsec-test-0123456789abcdef",
    )
    .await;
    let (ada, grace) = (app.user("Ada").await, app.user("Grace").await);
    let mut events: Vec<Envelope> = (0..30)
        .map(|n| {
            let user = if n % 2 == 0 { &ada } else { &grace };
            let order = OrderConfirmed {
                order_id: uuid::Uuid::new_v4(),
                user_id: user.id,
                total_cents: 2_400,
                currency: "USD".into(),
            };
            Envelope::new(types::ORDER_CONFIRMED, "order", &order).unwrap()
        })
        .collect();
    // An order.confirmed that can never be applied, three times among the others, and
    // one good event delivered twice.
    for at in [4, 15, 26] {
        let broken = serde_json::json!({"order_id": "not an id"});
        events.insert(
            at,
            Envelope::new(types::ORDER_CONFIRMED, "order", &broken).unwrap(),
        );
    }
    events.push(events[0].clone());
    let stream = format!("{}{}", app.keys.prefix(), streams::ORDER);
    Publisher::new(app.redis.clone(), 10_000)
        .publish_batch(&stream, &events)
        .await
        .unwrap();
    app.quiet().await;

    let mut redis = app.redis.clone();
    let dead_letters: usize = redis::cmd("XLEN")
        .arg(event_bus::dead_letter_stream(&stream))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(dead_letters, 3, "each broken event dead-lettered");
    let metrics = test_support::http::text(
        app.client
            .get(format!("{}/metrics", app.url()))
            .bearer_auth(common::KEY),
    )
    .await;
    let split: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("events_batches_split_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        split >= 1,
        "no batch held a broken event: the batched path was not tested"
    );
    // Exactly once: one email, one notification and one delivery per good event.
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 30);
    let to_ada = mail.iter().filter(|m| m.to == [ada.email.as_str()]).count();
    assert_eq!(to_ada, 15);
    let stored: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM notifications"#)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 30);
    assert_eq!(receiver.received_requests().await.unwrap().len(), 30);
}
