//! The inventory service under test: in-process on port 0 with a fresh database and
//! event streams of its own, talked to over real HTTP as the gateway would.

use inventory_service::Application;
use inventory_service::config::Config;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use service_kit::server::RunningServer;
use test_support::{StreamKeys, TestDatabase, service_settings};
use uuid::Uuid;

pub const KEY: &str = "test-inventory-service-key";

pub struct TestApp {
    pub db: TestDatabase,
    pub service: RunningServer,
    pub client: Client,
    pub keys: StreamKeys,
    pub redis: service_kit::redis::Connection,
    pub admin: Uuid,
    pub user: Uuid,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service with its settings changed by `configure` (typed, after the defaults).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let db = TestDatabase::create().await;
    let keys = StreamKeys::new();
    let mut config = settings(&db, &keys);
    configure(&mut config);
    let service = Application::build(config).await.unwrap().spawn();
    let redis = test_support::redis().await;
    TestApp {
        db,
        service,
        client: Client::new(),
        keys,
        redis,
        admin: Uuid::new_v4(),
        user: Uuid::new_v4(),
    }
}

/// The settings of a test's service: port 0, its database, its streams, its key.
pub fn settings(db: &TestDatabase, keys: &StreamKeys) -> Config {
    service_settings(
        "inventory-service",
        db.url(),
        keys,
        &[
            "--inventory-service-key",
            KEY,
            "--database-max-connections",
            "8",
        ],
    )
}

impl TestApp {
    /// Stops the service and starts it again on the same database and streams, as a
    /// restart (or a new replica) would, with `configure`d settings.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Config)) {
        let mut config = settings(&self.db, &self.keys);
        configure(&mut config);
        let service = Application::build(config).await.unwrap().spawn();
        std::mem::replace(&mut self.service, service)
            .stop()
            .await
            .unwrap();
    }

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
        test_support::http::json_with_status(
            self
            .request(Method::POST, "/products", true)
            .json(&json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price_cents, "stock": stock})),
            201,
        )
        .await
    }

    pub async fn available(&self, id: &str) -> i64 {
        let product =
            test_support::http::json(self.request(Method::GET, &format!("/products/{id}"), false))
                .await;
        product["available"].as_i64().unwrap()
    }

    pub fn stream(&self, name: &str) -> String {
        format!("{}{}", self.keys.prefix(), name)
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
}

#[allow(unused_imports)] // the products tests do not wait
pub use test_support::eventually;

#[allow(unused_imports)] // the saga tests do not check problems
pub use test_support::assert_problem;
