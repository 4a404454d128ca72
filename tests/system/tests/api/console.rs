//! The ops console in a real headless Chromium against the real binaries: what an
//! operator sees, and that a payload is shown as text, never run.
#![allow(clippy::unwrap_used)] // test-only code: a failed unwrap is a failed test

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;
use serde_json::{Value, json};
use system_tests::browser::Browser;
use system_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, System};

/// How long the console may take to show a change (it refreshes every 3 s).
const SHOWN_WITHIN: Duration = Duration::from_secs(15);

/// Opens the console and signs in through its form.
async fn sign_in(browser: &Browser, system: &System, email: &str, password: &str) {
    let client = &browser.client;
    client
        .goto(&format!("{}/console", system.gateway_url()))
        .await
        .unwrap();
    client
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("#sign-in button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// `[service, ready]` for each row of the services table.
const SERVICES_READY: &str = "return [...document.querySelectorAll('#services tbody tr')]
    .map(row => [row.dataset.service, row.cells[1].dataset.ready]);";

/// An `order.confirmed` event onto the system's order stream, as the order service
/// would publish it, with `data` as its payload.
async fn publish_order_event(system: &System, data: Value) -> String {
    let envelope = event_bus::Envelope::new("order.confirmed", "order", &data).unwrap();
    let mut redis = test_support::redis().await;
    let stream = format!("{}events:order", system.redis_prefix());
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(event_bus::ENVELOPE_FIELD)
        .arg(serde_json::to_string(&envelope).unwrap())
        .query_async(&mut redis)
        .await
        .unwrap();
    envelope.id.to_string()
}

#[tokio::test]
async fn an_admin_sees_all_six_services_ready_and_a_non_admin_is_refused() {
    let system = System::start(&[]).await;
    let user = system.user("Ada").await;
    let browser = Browser::start().await;

    sign_in(&browser, &system, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let ready = browser
        .wait_for(
            "six services, all ready",
            SHOWN_WITHIN,
            &format!(
                "const rows = (() => {{ {SERVICES_READY} }})();
                 return rows.length === 6 && rows.every(r => r[1] === 'true') ? rows : null;"
            ),
        )
        .await;
    let mut names: Vec<&str> = ready
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "gateway",
            "inventory",
            "notification",
            "order",
            "payment",
            "user"
        ]
    );

    // A fresh page holds no token; a user who is not an admin is turned away.
    sign_in(&browser, &system, &user.email, PASSWORD).await;
    browser
        .wait_for(
            "the refusal",
            SHOWN_WITHIN,
            "return document.getElementById('status').textContent.includes('admins only');",
        )
        .await;
    let shown = browser
        .run(
            "return [document.getElementById('console').hidden,
                     document.querySelectorAll('#services tbody tr').length];",
            Vec::new(),
        )
        .await;
    assert_eq!(shown, json!([true, 0]), "nothing of the console is shown");
    // And the API behind it says so too.
    let refused = system
        .request(Method::GET, "/ops/services", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn a_stopped_inventory_service_shows_as_an_open_breaker_on_the_order_service() {
    let system = System::start(&[]).await;
    let user = system.user("Ada").await;
    let admin = system.admin().await;
    let product = system.product(&admin, 500, 10).await;
    let browser = Browser::start().await;
    sign_in(&browser, &system, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let breaker = "const b = document.querySelector(
        '#services tr[data-service=order] [data-peer=inventory]');
        return b ? b.dataset.state : null;";
    // The order service priced no order yet: it has called the inventory service...
    system.order(&user, &product, 1, "tok_visa").await;
    assert_eq!(
        browser.wait_for("the breaker", SHOWN_WITHIN, breaker).await,
        "closed"
    );

    system.kill("inventory").await;
    // ...and now fails to: each order that needs a price is refused.
    for _ in 0..10 {
        let answer = system
            .post(
                "/orders",
                &user.token,
                json!({"items": [{"product_id": product, "quantity": 1}], "payment_method": "tok_visa"}),
            )
            .await;
        assert!(answer.status().is_server_error(), "{}", answer.status());
    }
    browser
        .wait_for(
            "the order service's breaker for the inventory service, open",
            SHOWN_WITHIN,
            &format!("return (() => {{ {breaker} }})() === 'open';"),
        )
        .await;
    let row = browser
        .run(
            "return document.querySelector('#services tr[data-service=order]').textContent;",
            Vec::new(),
        )
        .await;
    assert!(row.as_str().unwrap().contains("inventory: open"), "{row}");
}

#[tokio::test]
async fn an_event_that_always_fails_is_dead_lettered_shown_replayed_after_the_fix_and_gone() {
    let system = System::start(&[]).await;
    let user = system.user("Ada").await;
    let browser = Browser::start().await;
    sign_in(&browser, &system, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser
        .wait_for("the console", SHOWN_WITHIN, SERVICES_READY)
        .await;

    // The notification service needs the user service to address an email: with it
    // down, every delivery of this event fails until the consumer gives up on it.
    system.kill("user").await;
    let order_id = uuid::Uuid::new_v4();
    let event_id = publish_order_event(
        &system,
        json!({"order_id": order_id, "user_id": user.id, "total_cents": 1234, "currency": "USD"}),
    )
    .await;
    let letter = browser
        .wait_for(
            "the dead letter",
            Duration::from_secs(60),
            &format!(
                "const row = [...document.querySelectorAll('#dead-letters tbody tr')]
                   .find(r => r.textContent.includes('{event_id}'));
                 return row ? [row.dataset.deadLetter, row.querySelector('.event-type').textContent,
                               row.cells[1].textContent] : null;"
            ),
        )
        .await;
    assert_eq!(letter[1], "order.confirmed");
    assert_eq!(letter[2], "notification", "the group that gave up");
    let letter_id = letter[0].as_str().unwrap().to_owned();

    // The fault is fixed; the operator replays it.
    system.restart("user").await;
    browser
        .client
        .find(Locator::Css(&format!(
            "#dead-letters tr[data-dead-letter='{letter_id}'] button[data-action=replay]"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the dead letter gone",
            SHOWN_WITHIN,
            &format!("return !document.querySelector(\"#dead-letters tr[data-dead-letter='{letter_id}']\");"),
        )
        .await;
    // Audited: who did what to which dead letter, in the service's log and the gateway's.
    let admin_id = system.get("/users/me", &system.admin().await).await["id"].clone();
    for service in ["notification", "gateway"] {
        let audited = system.log_lines(service).await.into_iter().any(|line| {
            line["target"] == "audit"
                && line["admin"] == admin_id
                && line["dead_letter"] == letter_id.as_str()
                && line["action"] == "replay"
        });
        assert!(audited, "no audit line in the {service} service's log");
    }
    // Replayed, it did what it failed to do: the user is told.
    let told = test_support::eventually(Duration::from_secs(30), || async {
        let list = system.get("/notifications", &user.token).await;
        list["data"].as_array().unwrap().iter().any(|n| {
            n["subject"]
                .as_str()
                .unwrap()
                .contains(&order_id.to_string())
        })
    })
    .await;
    assert!(told, "the replayed event was handled");
}

#[tokio::test]
async fn a_dead_letter_whose_payload_holds_script_shows_the_text_and_runs_nothing() {
    let system = System::start(&[]).await;
    let browser = Browser::start().await;
    sign_in(&browser, &system, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser
        .wait_for("the console", SHOWN_WITHIN, SERVICES_READY)
        .await;

    // Not an order.confirmed payload: the consumer gives up on it at once.
    let hostile = "<script>window.__ran = 1</script><img src=x onerror=\"window.__ran = 2\">";
    let event_id = publish_order_event(&system, json!({ "note": hostile })).await;
    let shown = browser
        .wait_for(
            "the dead letter's payload",
            Duration::from_secs(30),
            &format!(
                "const row = [...document.querySelectorAll('#dead-letters tbody tr')]
                   .find(r => r.textContent.includes('{event_id}'));
                 return row ? row.querySelector('.payload').textContent : null;"
            ),
        )
        .await;
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("<script>window.__ran = 1</script>"),
        "shown as text: {shown}"
    );
    // Give an image's error handler time to fire, were there an image.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let effects = browser
        .run(
            "return [typeof window.__ran,
                     document.querySelectorAll('#dead-letters script, #dead-letters img').length];",
            Vec::new(),
        )
        .await;
    assert_eq!(
        effects,
        json!(["undefined", 0]),
        "nothing ran, nothing was made"
    );
}

#[tokio::test]
async fn an_orders_journey_shows_its_events_in_order() {
    let system = System::start(&[]).await;
    let user = system.user("Ada").await;
    let admin = system.admin().await;
    let product = system.product(&admin, 700, 10).await;
    let order = system.order(&user, &product, 2, "tok_visa").await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(
        system.settled(&user.token, &order_id).await["status"],
        "confirmed"
    );
    let browser = Browser::start().await;
    sign_in(&browser, &system, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // The operator clicks the order among the recent ones.
    browser
        .wait_for(
            "the recent order",
            SHOWN_WITHIN,
            &format!(
                "return !!document.querySelector(\"#recent-orders [data-order='{order_id}']\");"
            ),
        )
        .await;
    browser
        .client
        .find(Locator::Css(&format!(
            "#recent-orders [data-order='{order_id}']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let expected = [
        "order.created",
        "inventory.reserved",
        "payment.succeeded",
        "order.confirmed",
        "email.sent (order.confirmed)",
    ];
    let steps = browser
        .wait_for(
            "the journey up to the email",
            Duration::from_secs(30),
            "const steps = [...document.querySelectorAll('#journey li')].map(li => li.dataset.step);
             if (steps.includes('email.sent (order.confirmed)')) return steps;
             document.getElementById('journey-form').requestSubmit();
             return null;",
        )
        .await;
    let steps: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let positions: Vec<usize> = expected
        .iter()
        .map(|e| {
            steps
                .iter()
                .position(|s| s == e)
                .unwrap_or_else(|| panic!("{e} in {steps:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order: {steps:?}"
    );
    let trace = browser
        .run(
            "return document.getElementById('journey-trace').textContent;",
            Vec::new(),
        )
        .await;
    assert!(
        trace.as_str().unwrap().starts_with("Trace "),
        "a trace id: {trace}"
    );

    // The README's picture of the console, taken now that it shows a whole journey.
    browser
        .wait_for(
            "the chart",
            SHOWN_WITHIN,
            "const img = document.getElementById('throughput'); return img.complete && img.naturalWidth > 0;",
        )
        .await;
    browser.client.set_window_size(1400, 2000).await.unwrap();
    browser.run("window.scrollTo(0, 0);", Vec::new()).await;
    let png = browser.client.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&path, png).unwrap();
    println!("console screenshot: {}", path.display());
}
