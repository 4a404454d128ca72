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
//! - [`asyncapi`]: the AsyncAPI 3 document of every stream and event, made from them.
//! - `reads`: consumer-driven contracts: what each consumer reads of each event and
//!   each peer's answer, and the checks consumers and producers run against them; for
//!   tests only, behind the `contract-tests` feature.
//! - [`inventory`]: the inventory service's [`inventory::Product`] and
//!   [`inventory::InventoryClient`].
//! - [`ops`]: the ops API every service serves under `/ops`, and its client.
//! - [`peers`]: where a service finds each peer (`<NAME>_SERVICE_URL` / `_KEY`).

pub mod asyncapi;
pub mod events;
pub mod inventory;
pub mod ops;
mod peer;
#[cfg(any(test, feature = "contract-tests"))]
pub mod reads;
pub mod users;

use service_client::{Error, ErrorKind};

/// `Ok(None)` for a 404, the error otherwise.
pub fn none_if_not_found<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
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

/// Where a service finds each of its peers: `<NAME>_SERVICE_URL` and
/// `<NAME>_SERVICE_KEY`, one clap group per peer for a config to flatten.
pub mod peers {
    crate::peer::peer_args!(
        UserServiceArgs,
        "user",
        user_service_url,
        user_service_key,
        "USER_SERVICE_URL",
        "USER_SERVICE_KEY",
        "http://127.0.0.1:8001"
    );
    crate::peer::peer_args!(
        InventoryServiceArgs,
        "inventory",
        inventory_service_url,
        inventory_service_key,
        "INVENTORY_SERVICE_URL",
        "INVENTORY_SERVICE_KEY",
        "http://127.0.0.1:8005"
    );
    crate::peer::peer_args!(
        OrderServiceArgs,
        "order",
        order_service_url,
        order_service_key,
        "ORDER_SERVICE_URL",
        "ORDER_SERVICE_KEY",
        "http://127.0.0.1:8004"
    );
    crate::peer::peer_args!(
        PaymentServiceArgs,
        "payment",
        payment_service_url,
        payment_service_key,
        "PAYMENT_SERVICE_URL",
        "PAYMENT_SERVICE_KEY",
        "http://127.0.0.1:8002"
    );
    crate::peer::peer_args!(
        NotificationServiceArgs,
        "notification",
        notification_service_url,
        notification_service_key,
        "NOTIFICATION_SERVICE_URL",
        "NOTIFICATION_SERVICE_KEY",
        "http://127.0.0.1:8003"
    );
}
