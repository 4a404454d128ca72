//! The real user service, run as its own binary for the tests of what calls it (the
//! gateway, the notification and order services, the user client), as the system tests
//! run every service. A test of a caller thus links no service crate but its own.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::TestDatabase;
use crate::process::{ServiceProcess, workspace_binary};
use crate::stream_keys::StreamKeys;

/// A user service process on a free loopback port; killed when dropped.
pub struct UserService {
    process: ServiceProcess,
    url: String,
    key: String,
}

impl UserService {
    /// Starts `target/<profile>/user-service` with database `db`, event streams under
    /// `keys` and the internal key `key`, and waits until it listens (it has migrated
    /// and made its signing key by then).
    pub async fn start(db: &TestDatabase, keys: &StreamKeys, key: &str) -> Self {
        let env = HashMap::from([
            ("LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("DATABASE_URL".to_owned(), db.url().to_owned()),
            ("REDIS_URL".to_owned(), crate::redis_server::redis_url()),
            ("USER_SERVICE_KEY".to_owned(), key.to_owned()),
            ("EVENT_STREAM_PREFIX".to_owned(), keys.prefix().to_owned()),
        ]);
        let mut process = ServiceProcess::start(workspace_binary("user-service"), &env);
        let url = process.wait_until_listening(Duration::from_secs(60)).await;
        Self {
            process,
            url,
            key: key.to_owned(),
        }
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A user registered with it: the user's id and (fresh) email.
    pub async fn register(&self, name: &str) -> (Uuid, String) {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let response = reqwest::Client::new()
            .post(format!("{}/auth/register", self.url))
            .bearer_auth(&self.key)
            .json(&json!({"email": email, "password": "correct horse battery", "name": name}))
            .send()
            .await
            .expect("the user service answers");
        assert_eq!(response.status(), 201, "registration");
        let user: Value = response.json().await.expect("a user as JSON");
        let id = user["id"].as_str().and_then(|id| id.parse().ok());
        (id.expect("the user has an id"), email)
    }

    /// Stops it as an orchestrator would (SIGTERM), and waits until it has exited.
    pub async fn stop(mut self) {
        self.process.terminate();
        let exited = self.process.wait_for_exit(Duration::from_secs(15)).await;
        assert!(exited.is_some(), "the user service did not stop on SIGTERM");
    }
}
