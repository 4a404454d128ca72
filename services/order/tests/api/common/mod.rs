//! The whole saga under test: the user, inventory, payment and order services, each
//! on its own fresh database and its own Tokio runtime, sharing one Redis under event
//! streams of this test's own, talked to over real HTTP as the gateway would.
//!
//! One file: the saga's harness (four services, their runtimes, and what the tests
//! ask of them) is one system.
//!
//! A service on its own runtime can be killed: [`Node::kill`] shuts the runtime down
//! without a drain, so every task stops at its next await, open transactions roll back
//! as their connections drop and unacknowledged events stay pending in Redis, as after
//! a crash. [`System::restart_payment`] and [`System::restart_inventory`] start the
//! service again on the same database and port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use service_kit::server::Server;
use test_support::{StreamKeys, TestDatabase, UserService};
use uuid::Uuid;

pub use test_support::keys::{INVENTORY_KEY, ORDER_KEY, PAYMENT_KEY, USER_KEY};

pub use test_support::eventually;

/// How long a test waits for the saga to settle.
pub const SETTLE: Duration = Duration::from_secs(30);

/// A service running on a runtime of its own.
pub struct Node {
    runtime: Option<tokio::runtime::Runtime>,
    pub addr: SocketAddr,
}

impl Node {
    /// Starts the service `build` makes.
    pub async fn start(build: BoxFuture<'static, anyhow::Result<Server>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (started, addr) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let service = build.await.expect("the service starts");
            let _ = started.send(service.local_addr());
            service.run_until(std::future::pending()).await
        });
        let addr = addr.await.expect("the service started");
        Self {
            runtime: Some(runtime),
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Stops the service as a crash would: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The settings of `binary` in the saga: events are retried after 2 s.
fn settings<C: clap::Parser>(
    binary: &str,
    db: &TestDatabase,
    keys: &StreamKeys,
    more: &[&str],
) -> C {
    let saga = [
        "--database-max-connections",
        "6",
        "--event-retry-after-ms",
        "2000",
        "--event-handler-timeout-ms",
        "1500",
        "--event-consumer-concurrency",
        "8",
    ];
    let more: Vec<&str> = saga.iter().chain(more).copied().collect();
    test_support::service_settings(binary, db.url(), keys, &more)
}

/// Any free port, for a service's first start (a restart keeps the port it had).
const ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// How a test's system differs from the default one.
pub struct Options {
    /// Point the order service at this user service URL instead of the real one.
    pub user_service_url: Option<String>,
    /// Changes to the payment service's settings, kept when it restarts.
    pub payment: fn(&mut payment_service::config::Config),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            user_service_url: None,
            payment: |_| {},
        }
    }
}

/// The four services.
///
/// Fields drop in order: the services stop before their databases and streams go.
pub struct System {
    pub user: UserService,
    pub inventory: Node,
    pub payment: Node,
    payment_settings: fn(&mut payment_service::config::Config),
    pub order: Node,
    pub client: Client,
    /// An admin, as the gateway would name one (reads do not check users with the
    /// user service).
    pub admin: TestUser,
    /// Held until the test ends: dropping one drops its database.
    _user_db: TestDatabase,
    pub inventory_db: TestDatabase,
    pub payment_db: TestDatabase,
    _order_db: TestDatabase,
    pub keys: StreamKeys,
}

/// A user, as the gateway forwards them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub roles: &'static str,
}

pub async fn start() -> System {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> System {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let keys = StreamKeys::new();
    let (user_db, inventory_db, payment_db, order_db) = tokio::join!(
        TestDatabase::create(),
        TestDatabase::create(),
        TestDatabase::create(),
        TestDatabase::create()
    );
    let user = UserService::start(&user_db, &keys, USER_KEY).await;
    let inventory = start_inventory(&inventory_db, ANY_PORT, &keys).await;
    let payment = start_payment(&payment_db, ANY_PORT, &keys, options.payment).await;
    let user_url = options.user_service_url.unwrap_or_else(|| user.url());
    let order: order_service::config::Config = settings(
        "order-service",
        &order_db,
        &keys,
        &[
            "--order-service-key",
            ORDER_KEY,
            "--user-service-url",
            &user_url,
            "--user-service-key",
            USER_KEY,
            "--inventory-service-url",
            &inventory.url(),
            "--inventory-service-key",
            INVENTORY_KEY,
        ],
    );
    let order = Node::start(Box::pin(order_service::Application::build(order))).await;
    System {
        keys,
        _user_db: user_db,
        inventory_db,
        payment_db,
        _order_db: order_db,
        user,
        inventory,
        payment,
        payment_settings: options.payment,
        order,
        client: Client::new(),
        admin: TestUser {
            id: Uuid::new_v4(),
            roles: "user,admin",
        },
    }
}

async fn start_inventory(db: &TestDatabase, listen: SocketAddr, keys: &StreamKeys) -> Node {
    let mut config: inventory_service::config::Config = settings(
        "inventory-service",
        db,
        keys,
        &["--inventory-service-key", INVENTORY_KEY],
    );
    config.service.http.listen_addr = Some(listen);
    Node::start(Box::pin(inventory_service::Application::build(config))).await
}

async fn start_payment(
    db: &TestDatabase,
    listen: SocketAddr,
    keys: &StreamKeys,
    configure: fn(&mut payment_service::config::Config),
) -> Node {
    let mut config: payment_service::config::Config = settings(
        "payment-service",
        db,
        keys,
        &["--payment-service-key", PAYMENT_KEY],
    );
    config.service.http.listen_addr = Some(listen);
    configure(&mut config);
    Node::start(Box::pin(payment_service::Application::build(config))).await
}

impl System {
    /// Starts the (killed) payment service again on its database and port.
    pub async fn restart_payment(&mut self) {
        let listen = self.payment.addr;
        self.payment =
            start_payment(&self.payment_db, listen, &self.keys, self.payment_settings).await;
    }

    /// Starts the (killed) inventory service again on its database and port.
    pub async fn restart_inventory(&mut self) {
        let listen = self.inventory.addr;
        self.inventory = start_inventory(&self.inventory_db, listen, &self.keys).await;
    }

    fn call(
        &self,
        node: &Node,
        key: &str,
        user: &TestUser,
        method: Method,
        path: &str,
    ) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", node.url()))
            .bearer_auth(key)
            .header("x-user-id", user.id.to_string())
            .header("x-user-roles", user.roles)
    }

    /// A request to the order service on behalf of `user`.
    pub fn orders(&self, user: &TestUser, method: Method, path: &str) -> RequestBuilder {
        self.call(&self.order, ORDER_KEY, user, method, path)
    }

    /// Registers a user with the user service.
    pub async fn user(&self) -> TestUser {
        let (id, _) = self.user.register("Buyer").await;
        TestUser { id, roles: "user" }
    }

    /// `n` users, registered at once.
    pub async fn users(&self, n: usize) -> Vec<TestUser> {
        futures::future::join_all((0..n).map(|_| self.user())).await
    }

    /// Creates a product; returns its id.
    pub async fn product(&self, price_cents: i64, stock: i64) -> String {
        let response = self
            .call(
                &self.inventory,
                INVENTORY_KEY,
                &self.admin,
                Method::POST,
                "/products",
            )
            .json(&json!({
                "sku": Uuid::new_v4().simple().to_string(),
                "name": "Widget",
                "price_cents": price_cents,
                "stock": stock
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let product: Value = response.json().await.unwrap();
        product["id"].as_str().unwrap().to_owned()
    }

    /// The product's `available` stock.
    pub async fn available(&self, product_id: &str) -> i64 {
        let product = test_support::http::json(self.call(
            &self.inventory,
            INVENTORY_KEY,
            &self.admin,
            Method::GET,
            &format!("/products/{product_id}"),
        ))
        .await;
        product["available"].as_i64().unwrap()
    }

    /// Places an order; returns the response.
    pub async fn place(&self, user: &TestUser, lines: &[(&str, i64)], method: &str) -> Response {
        let items: Vec<Value> = lines
            .iter()
            .map(|(id, quantity)| json!({"product_id": id, "quantity": quantity}))
            .collect();
        self.orders(user, Method::POST, "/orders")
            .json(&json!({"items": items, "payment_method": method}))
            .send()
            .await
            .unwrap()
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn order(&self, user: &TestUser, lines: &[(&str, i64)], method: &str) -> String {
        let response = self.place(user, lines, method).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["status"], "pending");
        order["id"].as_str().unwrap().to_owned()
    }

    /// The order as `user` sees it.
    pub async fn get_order(&self, user: &TestUser, id: &str) -> Value {
        test_support::http::json_with_status(
            self.orders(user, Method::GET, &format!("/orders/{id}")),
            200,
        )
        .await
    }

    /// Waits until the order is no longer `pending`; returns it.
    pub async fn settled(&self, id: &str) -> Value {
        let settled = eventually(SETTLE, || async {
            self.get_order(&self.admin, id).await["status"] != "pending"
        })
        .await;
        assert!(settled, "order {id} is still pending");
        self.get_order(&self.admin, id).await
    }

    /// Waits until no order is `pending`; false if some still is after `timeout`.
    pub async fn all_settled(&self, timeout: Duration) -> bool {
        eventually(timeout, || async {
            self.all_orders()
                .await
                .iter()
                .all(|o| o["status"] != "pending")
        })
        .await
    }

    /// `user` cancels order `id`.
    pub async fn cancel(&self, user: &TestUser, id: &str) -> Response {
        self.orders(user, Method::POST, &format!("/orders/{id}/cancel"))
            .send()
            .await
            .unwrap()
    }

    /// Every order (as admin).
    pub async fn all_orders(&self) -> Vec<Value> {
        self.list(&self.order, ORDER_KEY, "/orders?limit=1000")
            .await
    }

    /// Every payment (as admin).
    pub async fn all_payments(&self) -> Vec<Value> {
        self.list(&self.payment, PAYMENT_KEY, "/payments?limit=1000")
            .await
    }

    /// `user`'s payments.
    pub async fn payments_of(&self, user: &TestUser) -> Vec<Value> {
        let list = test_support::http::json(self.call(
            &self.payment,
            PAYMENT_KEY,
            user,
            Method::GET,
            "/payments",
        ))
        .await;
        list["data"].as_array().unwrap().clone()
    }

    async fn list(&self, node: &Node, key: &str, path: &str) -> Vec<Value> {
        let response = self
            .call(node, key, &self.admin, Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.unwrap();
        list["data"].as_array().unwrap().clone()
    }

    /// The payments of order `id`.
    pub async fn payments_for(&self, id: &str) -> Vec<Value> {
        self.all_payments()
            .await
            .into_iter()
            .filter(|p| p["order_id"] == id)
            .collect()
    }

    /// The full name of one of this test's streams.
    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.keys.prefix())
    }
}

/// The fields a 422's `errors` names.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The field a copied entry carries, so the copier does not copy its own copies.
pub const COPY_FIELD: &str = "copy";

/// Adds every entry of the saga's streams a second time, as an at-least-once bus may
/// deliver it, until the returned task is aborted.
pub fn deliver_every_event_twice(system: &System) -> tokio::task::JoinHandle<()> {
    let streams: Vec<String> = [
        contracts::events::streams::ORDER,
        contracts::events::streams::INVENTORY,
        contracts::events::streams::PAYMENT,
    ]
    .iter()
    .map(|s| system.stream(s))
    .collect();
    tokio::spawn(async move {
        let mut redis = test_support::redis().await;
        let mut cursors = vec!["0".to_owned(); streams.len()];
        loop {
            let mut copied = 0;
            // One stream a command: on a cluster the streams live on different nodes.
            for (stream, cursor) in streams.iter().zip(cursors.iter_mut()) {
                let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(format!("({cursor}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(100)
                    .query_async(&mut redis)
                    .await
                    .unwrap_or_default();
                for entry in reply.ids {
                    cursor.clone_from(&entry.id);
                    copied += 1;
                    if entry.map.contains_key(COPY_FIELD) {
                        continue;
                    }
                    let envelope: String = entry.get(event_bus::ENVELOPE_FIELD).unwrap();
                    let _: String = redis::cmd("XADD")
                        .arg(stream)
                        .arg("*")
                        .arg(event_bus::ENVELOPE_FIELD)
                        .arg(envelope)
                        .arg(COPY_FIELD)
                        .arg(1)
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                }
            }
            if copied == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
}

/// The events on one of the saga's streams, as `(type, is_copy)`.
pub async fn events(system: &System, stream: &str) -> Vec<(String, bool)> {
    test_support::streams::entries(&system.stream(stream))
        .await
        .iter()
        .map(|entry| {
            let json: String = entry.get(event_bus::ENVELOPE_FIELD).unwrap();
            let envelope: event_bus::Envelope = serde_json::from_str(&json).unwrap();
            (envelope.event_type, entry.map.contains_key(COPY_FIELD))
        })
        .collect()
}

/// Checks a settled system: every order confirmed or cancelled, and stock and payments
/// agreeing with them. `stock` maps each product to its starting stock.
pub async fn assert_consistent(system: &System, stock: &HashMap<String, i64>) {
    let orders = system.all_orders().await;
    let payments = system.all_payments().await;
    let mut sold: HashMap<String, i64> = HashMap::new();
    for order in &orders {
        let id = order["id"].as_str().unwrap();
        let paid: Vec<&Value> = payments.iter().filter(|p| p["order_id"] == id).collect();
        assert!(paid.len() <= 1, "order {id} has {} payments", paid.len());
        match (
            order["status"].as_str().unwrap(),
            order["cancel_reason"].as_str(),
        ) {
            ("confirmed", None) => {
                assert_eq!(paid[0]["status"], "succeeded");
                assert_eq!(paid[0]["amount_cents"], order["total_cents"]);
                for item in order["items"].as_array().unwrap() {
                    *sold
                        .entry(item["product_id"].as_str().unwrap().to_owned())
                        .or_default() += item["quantity"].as_i64().unwrap();
                }
            }
            ("cancelled", Some("out_of_stock")) => assert!(paid.is_empty(), "{id} was charged"),
            ("cancelled", Some("payment_declined")) => assert_eq!(paid[0]["status"], "declined"),
            ("cancelled", Some("cancelled_by_user")) => {
                assert!(paid.iter().all(|p| p["status"] == "refunded"));
            }
            other => panic!("order {id} ended {other:?}"),
        }
    }
    // An order settles as soon as the order service hears of it; the inventory service
    // may still be releasing its stock (after a restart, once the event is retried).
    for (product, start) in stock {
        let sold = sold.get(product).copied().unwrap_or_default();
        eventually(SETTLE, || async {
            system.available(product).await == start - sold
        })
        .await;
        assert_eq!(
            system.available(product).await,
            start - sold,
            "product {product}: {sold} sold of {start}"
        );
    }
}
