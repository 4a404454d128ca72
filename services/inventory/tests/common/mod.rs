//! The inventory service under test: in-process on port 0 with a fresh database and
//! event streams of its own, talked to over real HTTP as the gateway would.
#![allow(dead_code)] // each test binary uses its own part of this module
#![allow(clippy::unwrap_used)] // in a test, a failed unwrap is a failed test

use clap::Parser;
use inventory_service::Application;
use inventory_service::config::Config;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use service_kit::server::RunningServer;
use test_support::TestDatabase;
use uuid::Uuid;

pub const KEY: &str = "test-inventory-service-key";

pub struct TestApp {
    pub db: TestDatabase,
    pub service: RunningServer,
    pub client: Client,
    pub prefix: String,
    pub redis: redis::aio::ConnectionManager,
    pub admin: Uuid,
    pub user: Uuid,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(test_support::redis_url())
            && let Ok(mut connection) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        }
    }
}

pub async fn spawn_app() -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let db = TestDatabase::create().await;
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let redis_url = test_support::redis_url();
    let config = Config::try_parse_from([
        "inventory-service",
        "--listen-addr",
        "127.0.0.1:0",
        "--database-url",
        db.url(),
        "--database-max-connections",
        "8",
        "--redis-url",
        &redis_url,
        "--inventory-service-key",
        KEY,
        "--event-stream-prefix",
        &prefix,
    ])
    .unwrap();
    let service = Application::build(config).await.unwrap().spawn();
    let redis = redis::aio::ConnectionManager::new(redis::Client::open(redis_url).unwrap())
        .await
        .unwrap();
    TestApp {
        db,
        service,
        client: Client::new(),
        prefix,
        redis,
        admin: Uuid::new_v4(),
        user: Uuid::new_v4(),
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str, as_admin: bool) -> RequestBuilder {
        let (id, roles) = if as_admin {
            (self.admin, "user,admin")
        } else {
            (self.user, "user")
        };
        self.client
            .request(method, format!("{}{}", self.service.url(), path))
            .bearer_auth(KEY)
            .header("x-user-id", id.to_string())
            .header("x-user-roles", roles)
    }

    /// Creates a product as admin; returns it.
    pub async fn product(&self, sku: &str, price_cents: i64, stock: i64) -> Value {
        let response = self
            .request(Method::POST, "/products", true)
            .json(&json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price_cents, "stock": stock}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn available(&self, id: &str) -> i64 {
        let product: Value = self
            .request(Method::GET, &format!("/products/{id}"), false)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        product["available"].as_i64().unwrap()
    }

    pub fn stream(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The events on one of this test's streams, as `(type, data)`.
    pub async fn events(&self, name: &str) -> Vec<(String, Value)> {
        let mut redis = self.redis.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.stream(name))
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|entry| {
                let json: String = entry.get("envelope").unwrap();
                let envelope: event_bus::Envelope = serde_json::from_str(&json).unwrap();
                (envelope.event_type, envelope.data)
            })
            .collect()
    }
}

#[allow(unused_imports)] // the products tests do not wait
pub use test_support::eventually;

#[allow(unused_imports)] // the saga tests do not check problems
pub use test_support::assert_problem;
