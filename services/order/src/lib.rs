//! The order service: takes orders, checking the user and pricing the lines with other
//! services, and follows each order through the saga to `confirmed` or `cancelled`.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - `contract` (its tests): what it reads of each event it consumes and of each peer
//!   answer it decodes, checked against the pact file.
//! - [`Application`]: wires the database, Redis, the peers' clients, the outbox relay
//!   and the event consumer into a [`service_kit::server::Server`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/orders/*` onto them.
//! - [`orders`]: the order model, the checks on a new order, and storage.
//! - [`saga`]: what the service does on `inventory.rejected`, `payment.succeeded` and
//!   `payment.declined`.

pub mod config;
#[cfg(test)]
mod contract;
pub mod orders;
pub mod routes;
pub mod saga;
pub mod state;

use contracts::events::streams;
use contracts::inventory::InventoryClient;
use contracts::users::UserClient;
use service_host::{Host, Spec};
use service_kit::server::Server;

use crate::config::Config;
pub use crate::state::{AppState, SERVICE};

/// The order database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

/// The order service: it takes orders and settles each on the saga's answers. It listens on
/// 8004 unless told otherwise.
pub const SPEC: Spec = Spec::new(SERVICE, env!("CARGO_PKG_VERSION"), 8004, &MIGRATOR)
    .publishes(&[streams::ORDER])
    .consumes(&[streams::INVENTORY, streams::PAYMENT], saga::HANDLED);

/// Builds the order service.
pub struct Application;

impl Application {
    /// The service on its host: the orders API (checking users and products through
    /// their clients) and the consumer that settles each order on the saga's answers.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let users = UserClient::new(config.user_service.client(SERVICE, &config.client)?);
        let inventory =
            InventoryClient::new(config.inventory_service.client(SERVICE, &config.client)?);
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        let order_events = host.stream(streams::ORDER);
        let state = AppState {
            pool: host.pool.clone(),
            users,
            inventory,
            order_events: order_events.clone(),
            wake: host.wake(),
        };
        let service = host
            .serve(
                routes::router().with_state(state),
                &config.order_service_key,
            )
            .consuming(saga::participant(order_events))
            .start()
            .await?;
        Ok(service)
    }
}
