//! The notification service under test: in-process on a fresh database, with the real
//! user service beside it (for email addresses), a real SMTP server, and event streams
//! of its own that the test publishes saga events onto.

use std::time::Duration;

use contracts::events::{OrderCancelled, OrderConfirmed, streams, types};
use event_bus::{Envelope, Publisher};
use notification_service::config::Config;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use service_kit::server::RunningServer;
use sqlx::PgPool;
use test_support::{StreamKeys, TestDatabase, TestSmtp, UserService, service_settings};
use uuid::Uuid;

pub use test_support::keys::USER_KEY;

pub use test_support::eventually;

pub const KEY: &str = "test-notification-service-key";

/// Fields drop in order: the services stop before their databases and streams go.
pub struct TestApp {
    pub service: Option<RunningServer>,
    pub user_service: UserService,
    pub smtp: TestSmtp,
    pub client: Client,
    pub redis: service_kit::redis::Connection,
    pub pool: PgPool,
    config: Config,
    /// Held until the test ends: dropping one drops its database.
    _db: TestDatabase,
    _user_db: TestDatabase,
    pub keys: StreamKeys,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
}

/// Starts the service with webhook targets on loopback allowed (the test receivers
/// listen there), short delivery backoff and a 50 ms poll.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service with its settings changed by `configure` (typed, after the defaults).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let keys = StreamKeys::new();
    let (db, user_db) = tokio::join!(TestDatabase::create(), TestDatabase::create());
    let user_service = UserService::start(&user_db, &keys, USER_KEY).await;
    let smtp = TestSmtp::start();
    let mut config = settings(&db, &keys, &user_service, &smtp);
    configure(&mut config);
    let service = start(config.clone()).await;
    let redis = test_support::redis().await;
    let pool = PgPool::connect(db.url()).await.unwrap();
    TestApp {
        service: Some(service),
        user_service,
        smtp,
        client: Client::new(),
        redis,
        pool,
        config,
        _db: db,
        _user_db: user_db,
        keys,
    }
}

/// The settings of a test's service: port 0, its database, streams, peers and SMTP.
fn settings(db: &TestDatabase, keys: &StreamKeys, users: &UserService, smtp: &TestSmtp) -> Config {
    service_settings(
        "notification-service",
        db.url(),
        keys,
        &[
            "--notification-service-key",
            KEY,
            "--user-service-url",
            &users.url(),
            "--user-service-key",
            USER_KEY,
            "--smtp-url",
            &smtp.url(),
            "--webhook-allow-private",
            "true",
            "--webhook-timeout-ms",
            "2000",
            "--delivery-backoff-base-ms",
            "200",
            "--delivery-backoff-max-ms",
            "1000",
            "--delivery-poll-ms",
            "50",
        ],
    )
}

async fn start(config: Config) -> RunningServer {
    notification_service::Application::build(config)
        .await
        .unwrap()
        .spawn()
}

impl TestApp {
    pub fn url(&self) -> String {
        self.service.as_ref().unwrap().url()
    }

    /// Stops the service and starts it again on the same database.
    pub async fn restart(&mut self) {
        self.service.take().unwrap().stop().await.unwrap();
        self.service = Some(start(self.config.clone()).await);
    }

    /// A request on behalf of `user_id` (with `roles`).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        user_id: Uuid,
        roles: &str,
    ) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(KEY)
            .header("x-user-id", user_id.to_string())
            .header("x-user-roles", roles)
    }

    /// A request from an admin.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, Uuid::from_u128(1), "user,admin")
    }

    /// Registers a user with the user service.
    pub async fn user(&self, name: &str) -> TestUser {
        let (id, email) = self.user_service.register(name).await;
        TestUser { id, email }
    }

    /// Publishes `envelope` onto one of this test's streams.
    pub async fn publish(&self, stream: &str, envelope: &Envelope) {
        Publisher::new(self.redis.clone(), 10_000)
            .publish(&format!("{}{stream}", self.keys.prefix()), envelope)
            .await
            .unwrap();
    }

    /// Publishes `order.confirmed` for a new order of `user`; returns the event.
    pub async fn confirm_order(&self, user: &TestUser) -> Envelope {
        let event = Envelope::new(
            types::ORDER_CONFIRMED,
            "order",
            &OrderConfirmed {
                order_id: Uuid::new_v4(),
                user_id: user.id,
                total_cents: 2_400,
                currency: "USD".into(),
            },
        )
        .unwrap();
        self.publish(streams::ORDER, &event).await;
        event
    }

    /// Publishes `order.cancelled` for a new order of `user`; returns the event.
    pub async fn cancel_order(&self, user: &TestUser, reason: &str) -> Envelope {
        let event = Envelope::new(
            types::ORDER_CANCELLED,
            "order",
            &OrderCancelled {
                order_id: Uuid::new_v4(),
                user_id: user.id,
                reason: reason.into(),
                total_cents: 2_400,
                currency: "USD".into(),
            },
        )
        .unwrap();
        self.publish(streams::ORDER, &event).await;
        event
    }

    /// Waits until every event on the streams has been handled and every queued email
    /// and delivery has been sent or given up.
    pub async fn quiet(&self) {
        let settled = eventually(Duration::from_secs(30), || async {
            let mut redis = self.redis.clone();
            let mut handled = true;
            for stream in [streams::ORDER, streams::PAYMENT] {
                let stream = format!("{}{stream}", self.keys.prefix());
                let groups: redis::RedisResult<
                    Vec<std::collections::HashMap<String, redis::Value>>,
                > = redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&stream)
                    .query_async(&mut redis)
                    .await;
                if let Ok(groups) = groups {
                    handled &= groups.iter().all(|g| {
                        matches!(g.get("pending"), Some(redis::Value::Int(0)))
                            && matches!(g.get("lag"), Some(redis::Value::Int(0)))
                    });
                }
            }
            let queued: i64 = sqlx::query_scalar!(
                r#"SELECT (SELECT count(*) FROM emails WHERE status = 'pending')
                        + (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')
                          AS "queued!""#
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            handled && queued == 0
        })
        .await;
        assert!(settled, "events, emails and deliveries did not settle");
    }

    /// Creates a webhook as admin; returns its id.
    pub async fn webhook(&self, url: &str, events: &[&str], secret: &str) -> String {
        let response = self
            .admin(Method::POST, "/webhooks")
            .json(&json!({"url": url, "events": events, "secret": secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let webhook: Value = response.json().await.unwrap();
        assert!(webhook.get("secret").is_none());
        webhook["id"].as_str().unwrap().to_owned()
    }

    /// The deliveries log of webhook `id`.
    pub async fn deliveries(&self, id: &str) -> Vec<Value> {
        let list = test_support::http::json(
            self.admin(Method::GET, &format!("/webhooks/{id}/deliveries")),
        )
        .await;
        list["data"].as_array().unwrap().clone()
    }
}
