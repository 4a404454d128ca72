//! The user service's shapes and client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_client::{Client, Error};
use service_kit::internal_auth::Caller;
use uuid::Uuid;

use crate::{List, none_if_not_found};

/// A user as the user service returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A registration.
#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// Calls the user service.
#[derive(Debug, Clone)]
pub struct UserClient {
    client: Client,
}

impl UserClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The user `id` as `caller` may see it; `None` if missing or not theirs to see.
    pub async fn get_user(&self, id: Uuid, caller: &Caller) -> Result<Option<User>, Error> {
        none_if_not_found(
            self.client
                .get(&format!("/users/{id}"))
                .on_behalf_of(caller)
                .send_json()
                .await,
        )
    }

    /// Registers a user. Not retried: a second attempt after a lost answer would meet
    /// the first's email and fail with 409.
    pub async fn create_user(&self, user: &NewUser) -> Result<User, Error> {
        self.client
            .post("/auth/register")
            .json(user)
            .send_json()
            .await
    }

    /// Renames user `id`; `None` if missing or not `caller`'s to change.
    pub async fn update_user(
        &self,
        id: Uuid,
        name: &str,
        caller: &Caller,
    ) -> Result<Option<User>, Error> {
        none_if_not_found(
            self.client
                .patch(&format!("/users/{id}"))
                .on_behalf_of(caller)
                .json(&serde_json::json!({ "name": name }))
                .send_json()
                .await,
        )
    }

    /// The users among `ids` that exist. A read, so it carries an idempotency key and
    /// is retried like a GET.
    pub async fn get_users_by_ids(&self, ids: &[Uuid]) -> Result<Vec<User>, Error> {
        let list: List<User> = self
            .client
            .post("/internal/users/batch")
            .with_idempotency_key()
            .json(&serde_json::json!({ "ids": ids }))
            .send_json()
            .await?;
        Ok(list.data)
    }
}
