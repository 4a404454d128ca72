//! The whole system as users run it: the six service binaries started as processes (as
//! `scripts/run` starts them), each on a free port with a fresh database, sharing one
//! real Redis under a stream prefix of their own, emailing a real SMTP server, and
//! driven only through the gateway over HTTP.
//!
//! The services start one after another, each told where the ones before it listen:
//! user, inventory, payment, order, notification, then the gateway in front of all.
#![allow(clippy::unwrap_used)] // test-only code: a failed unwrap is a failed test

pub mod browser;
pub mod counts;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use test_support::{ServiceProcess, StreamKeys, TestDatabase, TestSmtp, workspace_binary};
use uuid::Uuid;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "system-test-admin-password";
pub const PASSWORD: &str = "correct horse battery";

/// How long a whole-system step may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// (service, binary, has a database, the URL variable its callers read)
const SERVICES: [(&str, &str, bool, &str); 6] = [
    ("user", "user-service", true, "USER_SERVICE_URL"),
    (
        "inventory",
        "inventory-service",
        true,
        "INVENTORY_SERVICE_URL",
    ),
    ("payment", "payment-service", true, "PAYMENT_SERVICE_URL"),
    ("order", "order-service", true, "ORDER_SERVICE_URL"),
    (
        "notification",
        "notification-service",
        true,
        "NOTIFICATION_SERVICE_URL",
    ),
    ("gateway", "gateway", false, "GATEWAY_URL"),
];

/// A process's resident memory, in KiB (`/proc/<pid>/status`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub resident: u64,
    /// Of it, the process's own (`RssAnon`: heap, stacks, buffers); the rest is pages of
    /// the program file and shared libraries, clean, which the kernel may drop and read
    /// again whenever it needs the memory.
    pub own: u64,
    /// Resident now with each page shared with other processes (the C library's, say)
    /// counted as its share (`Pss`): summed over processes, what they occupy together.
    pub proportional: u64,
    /// Resident at the peak (`VmHWM`).
    pub peak: u64,
}

/// A signed-in user.
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// The running system. Processes stop (killed on drop) before the databases go.
pub struct System {
    processes: tokio::sync::Mutex<HashMap<&'static str, ServiceProcess>>,
    envs: HashMap<&'static str, HashMap<String, String>>,
    urls: HashMap<&'static str, String>,
    pub smtp: TestSmtp,
    pub http: reqwest::Client,
    databases: Vec<(&'static str, TestDatabase)>,
    keys: StreamKeys,
}

impl System {
    /// Starts every service; `settings` are added to (or override) every one's.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let keys = StreamKeys::new();
        let smtp = TestSmtp::start();
        let mut common: HashMap<String, String> = [
            ("RUST_LOG", "info".to_owned()),
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("REDIS_URL", test_support::redis_url()),
            ("EVENT_STREAM_PREFIX", keys.prefix().to_owned()),
            (
                "RATE_LIMIT_KEY_PREFIX",
                format!("{}ratelimit:", keys.prefix()),
            ),
            // A crashed consumer's events come back within a second, not thirty.
            ("EVENT_RETRY_AFTER_MS", "1000".to_owned()),
            ("DELIVERY_BACKOFF_BASE_MS", "200".to_owned()),
            ("DELIVERY_POLL_MS", "100".to_owned()),
            ("SMTP_URL", smtp.url()),
            ("WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            ("ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("USER_SERVICE_KEY", "system-user-service-key".to_owned()),
            (
                "INVENTORY_SERVICE_KEY",
                "system-inventory-service-key".to_owned(),
            ),
            ("ORDER_SERVICE_KEY", "system-order-service-key".to_owned()),
            (
                "PAYMENT_SERVICE_KEY",
                "system-payment-service-key".to_owned(),
            ),
            (
                "NOTIFICATION_SERVICE_KEY",
                "system-notification-service-key".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (name, value) in settings {
            common.insert((*name).to_owned(), (*value).to_owned());
        }

        let mut system = Self {
            processes: tokio::sync::Mutex::default(),
            envs: HashMap::new(),
            urls: HashMap::new(),
            smtp,
            http: reqwest::Client::new(),
            databases: Vec::new(),
            keys,
        };
        for (name, binary, has_database, url_variable) in SERVICES {
            let mut env = common.clone();
            if has_database {
                let database = TestDatabase::create().await;
                env.insert("DATABASE_URL".to_owned(), database.url().to_owned());
                system.databases.push((name, database));
            }
            let mut process = ServiceProcess::start(workspace_binary(binary), &env);
            let url = process.wait_until_listening(PATIENCE).await;
            system.wait_until_ready(name, &url).await;
            common.insert(url_variable.to_owned(), url.clone());
            // A restart listens where the callers already look.
            let port = url.rsplit(':').next().unwrap().to_owned();
            env.insert("LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}"));
            system.envs.insert(name, env);
            system.urls.insert(name, url);
            system.processes.get_mut().insert(name, process);
        }
        system
    }

    async fn wait_until_ready(&self, name: &str, url: &str) {
        let ready = test_support::eventually(PATIENCE, || async {
            self.http
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "the {name} service did not become ready");
    }

    /// The prefix of this system's event streams and rate-limit keys in Redis.
    /// Each service's database: (service, database name).
    pub fn databases(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.databases.iter().map(|(s, d)| (*s, d.name()))
    }

    pub fn redis_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Each service's resident memory now and at its peak.
    pub async fn memory(&self) -> Vec<(&'static str, Memory)> {
        let processes = self.processes.lock().await;
        SERVICES
            .iter()
            .map(|(name, ..)| {
                let process = &processes[name];
                let kib = |field| process.memory_kib(field).unwrap_or(0);
                let memory = Memory {
                    resident: kib("VmRSS"),
                    own: kib("RssAnon"),
                    proportional: process.mappings_kib("Pss").unwrap_or(0),
                    peak: kib("VmHWM"),
                };
                (*name, memory)
            })
            .collect()
    }

    /// `path` under the gateway's `/api`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.urls["gateway"])
    }

    /// Every JSON line `service` has logged so far (this run of it).
    pub async fn log_lines(&self, service: &str) -> Vec<Value> {
        self.processes.lock().await[service].log_lines()
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> &str {
        &self.urls["gateway"]
    }

    /// Kills `service` with SIGKILL: no drain, nothing flushed.
    pub async fn kill(&self, service: &str) {
        let mut processes = self.processes.lock().await;
        processes.get_mut(service).unwrap().kill().await;
    }

    /// Starts `service` again, same database and port, and waits until it is ready.
    pub async fn restart(&self, service: &'static str) {
        let binary = SERVICES.iter().find(|s| s.0 == service).unwrap().1;
        let mut process = ServiceProcess::start(workspace_binary(binary), &self.envs[service]);
        let url = process.wait_until_listening(PATIENCE).await;
        assert_eq!(url, self.urls[service], "restarted on the same port");
        self.wait_until_ready(service, &url).await;
        self.processes.lock().await.insert(service, process);
    }

    /// A request through the gateway, with `token` when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let response = self
            .request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .request(Method::POST, "/auth/login", None)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {email}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The admin made at start-up, signed in.
    pub async fn admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers a new user through the gateway and signs them in.
    pub async fn user(&self, name: &str) -> User {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let response = self
            .request(Method::POST, "/auth/register", None)
            .json(&json!({"email": email, "password": PASSWORD, "name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registration");
        let body: Value = response.json().await.unwrap();
        User {
            id: body["id"].as_str().unwrap().to_owned(),
            token: self.login(&email, PASSWORD).await,
            email,
        }
    }

    /// A product made by the admin; returns its id.
    pub async fn product(&self, admin: &str, price_cents: i64, stock: i64) -> String {
        let sku = format!("SKU-{}", Uuid::new_v4().simple());
        let response = self
            .post(
                "/products",
                admin,
                json!({"sku": sku, "name": "Mug", "price_cents": price_cents, "stock": stock}),
            )
            .await;
        assert_eq!(response.status(), 201, "product created");
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Places an order of `quantity` of `product`; returns the accepted order.
    pub async fn order(&self, user: &User, product: &str, quantity: i64, card: &str) -> Value {
        let response = self
            .post(
                "/orders",
                &user.token,
                json!({"items": [{"product_id": product, "quantity": quantity}], "payment_method": card}),
            )
            .await;
        assert_eq!(response.status(), 202, "order accepted");
        response.json().await.unwrap()
    }

    /// Waits until the order is no longer `pending`, and returns it.
    pub async fn settled(&self, token: &str, order_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let order = self.get(&format!("/orders/{order_id}"), token).await;
            if order["status"] != "pending" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} still pending"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
