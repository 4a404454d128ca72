//! The domain's shared language: what services send each other, and a typed client per
//! service so a caller writes `users.get_user(id, &caller)` instead of a URL.
//!
//! The clients are thin: every resilience concern (retries, deadlines, breakers) is
//! `service_client`'s; a client here only knows its service's routes and shapes, and
//! turns "not found" into `None` where that is an answer rather than a failure.
//!
//! # Layout
//!
//! - [`users`]: the user service's [`users::User`] and [`users::UserClient`].
//! - [`events`]: the saga's event payloads and stream names.
//! - [`inventory`]: the inventory service's [`inventory::Product`] and
//!   [`inventory::InventoryClient`].

pub mod events;
pub mod inventory;
pub mod users;

use service_client::{Error, ErrorKind};

/// `Ok(None)` for a 404, the error otherwise.
fn none_if_not_found<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if matches!(&error.kind, ErrorKind::Status { status, .. } if status.as_u16() == 404) => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The `{data: [...]}` list envelope.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}
