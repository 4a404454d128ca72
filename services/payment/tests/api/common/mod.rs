//! The payment service under test: in-process on port 0 with a fresh database and event
//! streams of its own; events are published to it and read back from its stream.

use event_bus::{Envelope, Publisher};
use payment_service::Application;
use payment_service::config::Config;
use serde_json::Value;
use service_kit::server::RunningServer;
use test_support::{StreamKeys, TestDatabase, service_settings};

pub const KEY: &str = "test-payment-service-key";

pub struct TestApp {
    /// Held until the test ends: dropping it drops the database.
    _db: TestDatabase,
    pub service: RunningServer,
    pub keys: StreamKeys,
    pub redis: service_kit::redis::Connection,
    pub pool: sqlx::PgPool,
}

pub async fn spawn_app() -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let db = TestDatabase::create().await;
    let keys = StreamKeys::new();
    let config: Config = service_settings(
        "payment-service",
        db.url(),
        &keys,
        &["--payment-service-key", KEY],
    );
    let service = Application::build(config).await.unwrap().spawn();
    let redis = test_support::redis().await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    TestApp {
        _db: db,
        service,
        keys,
        redis,
        pool,
    }
}

impl TestApp {
    pub fn stream(&self, name: &str) -> String {
        format!("{}{}", self.keys.prefix(), name)
    }

    /// Publishes `events` onto this test's stream `name`, in one pipeline.
    pub async fn publish(&self, name: &str, events: &[Envelope]) {
        Publisher::new(self.redis.clone(), 10_000)
            .publish_batch(&self.stream(name), events)
            .await
            .unwrap();
    }

    /// The events on one of this test's streams, as `(type, data)`.
    pub async fn events(&self, name: &str) -> Vec<(String, Value)> {
        test_support::streams::envelopes(&self.stream(name))
            .await
            .into_iter()
            .map(|mut envelope| {
                let event_type = envelope["type"].as_str().unwrap().to_owned();
                (event_type, envelope["data"].take())
            })
            .collect()
    }

    /// How many events of `event_type` are on the payment stream.
    pub async fn count(&self, event_type: &str) -> usize {
        self.events(contracts::events::streams::PAYMENT)
            .await
            .iter()
            .filter(|(t, _)| t == event_type)
            .count()
    }

    /// The recorded payments, as `(order id, status)`.
    pub async fn payments(&self) -> Vec<(uuid::Uuid, String)> {
        sqlx::query!("SELECT order_id, status FROM payments ORDER BY order_id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.order_id, row.status))
            .collect()
    }

    /// Batches that failed and fell back to one event at a time, from `/metrics`.
    pub async fn batches_split(&self) -> u64 {
        let metrics = test_support::http::text(
            reqwest::Client::new()
                .get(format!("{}/metrics", self.service.url()))
                .bearer_auth(KEY),
        )
        .await;
        metrics
            .lines()
            .filter(|l| l.starts_with("events_batches_split_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

pub use test_support::eventually;
