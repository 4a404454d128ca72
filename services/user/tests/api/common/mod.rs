//! The user service under test: in-process on port 0 with a fresh database, talked to
//! over real HTTP with the service key, as the gateway would.

use reqwest::{Client, Response};
use serde_json::{Value, json};
use service_kit::server::RunningServer;
use test_support::{TestDatabase, service_settings};
use user_service::Application;
use user_service::config::{Cli, Config};
use uuid::Uuid;

pub const SERVICE_KEY: &str = "test-user-service-key";

/// A user service started by [`start`], with event streams of its own.
pub struct TestService {
    service: RunningServer,
    pub keys: test_support::StreamKeys,
}

impl TestService {
    pub fn url(&self) -> String {
        self.service.url()
    }

    pub async fn stop(self) -> Result<(), service_kit::server::ServeError> {
        self.service.stop().await
    }
}

/// Starts a user service on `database_url`, its settings changed by `configure`.
pub async fn start(database_url: &str, configure: impl FnOnce(&mut Config)) -> TestService {
    let keys = test_support::StreamKeys::new();
    let cli: Cli = service_settings(
        "user-service",
        database_url,
        &keys,
        &[
            "--user-service-key",
            SERVICE_KEY,
            "--database-max-connections",
            "4",
        ],
    );
    let mut config = cli.config;
    configure(&mut config);
    let service = Application::build(config)
        .await
        .expect("the user service starts")
        .spawn();
    TestService { service, keys }
}

/// A user service on its own fresh database.
pub struct TestApp {
    pub db: TestDatabase,
    pub service: TestService,
    pub client: Client,
    /// This app's event stream prefix.
    pub prefix: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service on a fresh database with its settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDatabase::create().await;
    let service = start(db.url(), configure).await;
    let prefix = service.keys.prefix().to_owned();
    TestApp {
        db,
        service,
        client: Client::new(),
        prefix,
    }
}

/// A registered user and what the gateway would forward for them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub roles: Vec<String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.service.url(), path)
    }

    /// A request carrying the service key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(SERVICE_KEY)
    }

    /// A request on behalf of `user`, as the gateway sends it.
    pub fn as_user(
        &self,
        user: &TestUser,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header("x-user-id", user.id.to_string())
            .header("x-user-roles", user.roles.join(","))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({ "email": email, "password": password, "name": name }),
        )
        .await
    }

    /// Registers a fresh user and returns it.
    pub async fn new_user(&self) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let response = self.register(&email, &password, "Test User").await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        TestUser {
            id: body["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("id"),
            email,
            password,
            roles: vec!["user".to_owned()],
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Logs in and returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.request(reqwest::Method::GET, "/auth/jwks")
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JWK set")
    }
}

/// Verifies `token` the way any standard verifier would: jsonwebtoken given the JWK set,
/// not the service's own code. Returns the claims.
pub fn verify(token: &str, jwks: &jsonwebtoken::jwk::JwkSet) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["switchyard"]);
    validation.set_audience(&["switchyard-api"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

#[allow(unused_imports)] // not every test binary checks problems
pub use test_support::assert_problem;
