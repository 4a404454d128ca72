//! The real user service, started in-process for the tests of what calls it (the
//! gateway, the notification and order services, the user client).

use clap::Parser;
use serde_json::{Value, json};
use service_kit::server::Server;
use uuid::Uuid;

use crate::database::TestDatabase;
use crate::stream_keys::StreamKeys;

/// Builds the user service on a free loopback port, with database `db`, event streams
/// under `keys` and the internal key `key`; spawn or run it.
pub fn build(
    db: &TestDatabase,
    keys: &StreamKeys,
    key: &str,
) -> impl Future<Output = anyhow::Result<Server>> + Send + 'static {
    let args = [
        "user-service",
        "--listen-addr",
        "127.0.0.1:0",
        "--database-url",
        db.url(),
        "--redis-url",
        &crate::redis_server::redis_url(),
        "--user-service-key",
        key,
        "--event-stream-prefix",
        keys.prefix(),
    ]
    .map(str::to_owned);
    async move {
        let cli = user_service::config::Cli::try_parse_from(args)?;
        user_service::Application::build(cli.config).await
    }
}

/// A user registered with the user service at `url` (called with its key `key`):
/// its id and its (fresh) email.
pub async fn register(url: &str, key: &str, name: &str) -> (Uuid, String) {
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .post(format!("{url}/auth/register"))
        .bearer_auth(key)
        .json(&json!({"email": email, "password": "correct horse battery", "name": name}))
        .send()
        .await
        .expect("the user service answers");
    assert_eq!(response.status(), 201, "registration");
    let user: Value = response.json().await.expect("a user as JSON");
    let id = user["id"].as_str().and_then(|id| id.parse().ok());
    (id.expect("the user has an id"), email)
}
