//! The gateway under test: in front of the real user service (tokens, JWKS) and
//! wiremock servers standing in for the order, inventory, payment and notification
//! services, with rate-limit keys of its own in the real Redis.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gateway::config::Config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Client;
use serde_json::{Value, json};
use service_kit::server::RunningServer;
use sqlx::PgPool;
use test_support::{StreamKeys, TestDatabase, UserService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

pub use test_support::keys::{INVENTORY_KEY, NOTIFICATION_KEY, ORDER_KEY, PAYMENT_KEY, USER_KEY};
use wiremock::MockServer;

/// Fields drop in order: the servers stop before the database and keys go.
pub struct TestGateway {
    pub gateways: Vec<RunningServer>,
    pub user_service: Option<UserService>,
    pub order: MockServer,
    pub inventory: MockServer,
    pub payment: MockServer,
    pub notification: MockServer,
    pub client: Client,
    pub user_pool: PgPool,
    /// The default test settings (before a test's changes), for gateway processes.
    args: Vec<String>,
    /// Held until the test ends: dropping them drops the database and the keys.
    _user_db: TestDatabase,
    _keys: StreamKeys,
}

/// Starts `replicas` gateways sharing one rate-limit prefix.
pub async fn spawn(replicas: usize) -> TestGateway {
    spawn_with(replicas, |_| {}).await
}

/// Starts `replicas` gateways with their settings changed by `configure` (typed, after
/// the defaults).
pub async fn spawn_with(replicas: usize, configure: impl Fn(&mut Config)) -> TestGateway {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let keys = StreamKeys::new();
    let user_db = TestDatabase::create().await;
    let redis_url = test_support::redis_url();
    let user_service = UserService::start(&user_db, &keys, USER_KEY).await;
    let (order, inventory, payment, notification) = tokio::join!(
        MockServer::start(),
        MockServer::start(),
        MockServer::start(),
        MockServer::start()
    );
    let rate_prefix = format!("{}ratelimit:", keys.prefix());
    let user_url = user_service.url();
    let (order_url, inventory_url, payment_url, notification_url) = (
        order.uri(),
        inventory.uri(),
        payment.uri(),
        notification.uri(),
    );
    let defaults = [
        ("--listen-addr", "127.0.0.1:0"),
        ("--redis-url", redis_url.as_str()),
        ("--rate-limit-key-prefix", rate_prefix.as_str()),
        ("--user-service-url", user_url.as_str()),
        ("--user-service-key", USER_KEY),
        ("--order-service-url", order_url.as_str()),
        ("--order-service-key", ORDER_KEY),
        ("--inventory-service-url", inventory_url.as_str()),
        ("--inventory-service-key", INVENTORY_KEY),
        ("--payment-service-url", payment_url.as_str()),
        ("--payment-service-key", PAYMENT_KEY),
        ("--notification-service-url", notification_url.as_str()),
        ("--notification-service-key", NOTIFICATION_KEY),
    ];
    let mut args = vec!["gateway".to_owned()];
    for (flag, value) in defaults {
        args.extend([flag.to_owned(), value.to_owned()]);
    }
    let mut gateways = Vec::new();
    for _ in 0..replicas {
        let mut config = Config::try_parse_from(&args).expect("valid test settings");
        configure(&mut config);
        gateways.push(gateway::Application::build(config).await.unwrap().spawn());
    }
    let user_pool = PgPool::connect(user_db.url()).await.unwrap();
    TestGateway {
        gateways,
        user_service: Some(user_service),
        order,
        inventory,
        payment,
        notification,
        client: Client::new(),
        user_pool,
        args,
        _user_db: user_db,
        _keys: keys,
    }
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateways[0].url())
    }

    /// `GET path`, with `token` as the bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Starts the gateway binary as a process with the default test settings (sharing
    /// the in-process gateways' peers and rate-limit prefix).
    pub async fn process(&self) -> (test_support::ServiceProcess, String) {
        let env: std::collections::HashMap<String, String> = self.args[1..]
            .chunks(2)
            .map(|pair| {
                let name = pair[0]
                    .trim_start_matches("--")
                    .replace('-', "_")
                    .to_uppercase();
                (name, pair[1].clone())
            })
            .collect();
        let mut process = test_support::ServiceProcess::start(env!("CARGO_BIN_EXE_gateway"), &env);
        let url = process
            .wait_until_listening(std::time::Duration::from_secs(30))
            .await;
        (process, url)
    }

    /// Stops the user service.
    pub async fn stop_user_service(&mut self) {
        if let Some(service) = self.user_service.take() {
            service.stop().await;
        }
    }

    /// Registers a user through the gateway and logs in; returns `(id, token)`.
    pub async fn signed_in_user(&self) -> (Uuid, String) {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let password = "correct horse battery";
        let registered: Value = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&json!({"email": email, "password": password, "name": "Ada"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let login: Value = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            registered["id"].as_str().unwrap().parse().unwrap(),
            login["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// The user service's live signing key: `(kid, PKCS#8 DER)`, for minting tokens
    /// with an independent JWT library.
    pub async fn signing_key(&self) -> (String, Vec<u8>) {
        let (kid, seed): (String, Vec<u8>) = sqlx::query_as(
            "SELECT kid, seed FROM signing_keys WHERE retired_at IS NULL
             ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_one(&self.user_pool)
        .await
        .unwrap();
        let seed: [u8; 32] = seed.try_into().unwrap();
        let der = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_der()
            .unwrap();
        (kid, der.as_bytes().to_vec())
    }

    /// A token signed with the user service's key by jsonwebtoken, with `claims`
    /// merged over valid ones.
    pub async fn mint(&self, claims: Value) -> String {
        let (kid, der) = self.signing_key().await;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        encode_claims(&header, &EncodingKey::from_ed_der(&der), claims)
    }
}

/// Makes `server` answer every GET with an empty list.
pub async fn answer_everything(server: &MockServer) {
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(server)
        .await;
}

/// Valid claims for a user with `overrides` applied.
pub fn claims(overrides: Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": "switchyard",
        "aud": "switchyard-api",
        "sub": Uuid::new_v4().to_string(),
        "roles": ["user"],
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": Uuid::new_v4().to_string(),
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

pub fn encode_claims(header: &Header, key: &EncodingKey, overrides: Value) -> String {
    jsonwebtoken::encode(header, &claims(overrides), key).unwrap()
}

/// Sends a request with `target` exactly as written (no client-side normalisation of
/// the path) and returns the status code.
pub async fn raw_status(base: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap()
}

/// One keep-alive connection to the gateway, written to and read from by hand: a
/// request can go in pieces with pauses between them, as slow or careful clients send
/// it, and each answer is read whole (by its `Content-Length`) before the next request.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
    read: Vec<u8>,
}

/// An answer read from a [`RawConnection`].
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawConnection {
    pub async fn open(base: &str) -> Self {
        let addr = base.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            read: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads the next answer's head (an informational one too) and, for a final one,
    /// its body; none if the connection closed before a whole answer came.
    pub async fn answer(&mut self) -> Option<RawAnswer> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(length) = parsed.parse(&self.read).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let body_length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let body_length = if status < 200 { 0 } else { body_length };
                while self.read.len() < length + body_length {
                    if !self.fill().await {
                        return None;
                    }
                }
                let body = self.read[length..length + body_length].to_vec();
                self.read.drain(..length + body_length);
                return Some(RawAnswer {
                    status,
                    headers,
                    body,
                });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads more; false at the connection's end (or a reset).
    async fn fill(&mut self) -> bool {
        let mut more = [0; 16 * 1024];
        match self.stream.read(&mut more).await {
            Ok(0) | Err(_) => false,
            Ok(count) => {
                self.read.extend_from_slice(&more[..count]);
                true
            }
        }
    }
}
