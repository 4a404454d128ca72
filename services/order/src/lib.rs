//! The order service: takes orders, checking the user and pricing the lines with other
//! services, and follows each order through the saga to `confirmed` or `cancelled`.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, the peers' clients, the outbox relay
//!   and the event consumer into a [`service_kit::server::Server`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/orders/*` onto them.
//! - [`orders`]: the order model, the checks on a new order, and storage.
//! - [`saga`]: what the service does on `inventory.rejected`, `payment.succeeded` and
//!   `payment.declined`.

pub mod config;
pub mod orders;
pub mod routes;
pub mod saga;
pub mod state;

use contracts::events::streams;
use contracts::inventory::InventoryClient;
use contracts::ops::OpsApi;
use contracts::users::UserClient;
use event_bus::{Foundation, Subscription};
use service_kit::server::Server;

use crate::config::Config;
pub use crate::state::{AppState, SERVICE};

/// The order database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

/// The port the order service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8004;

/// Builds the order service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let users = UserClient::new(config.user_service.client(SERVICE, &config.client)?);
        let inventory =
            InventoryClient::new(config.inventory_service.client(SERVICE, &config.client)?);
        let base = Foundation::connect(&config.service, &config.events, &MIGRATOR).await?;
        let order_events = base.stream(streams::ORDER);
        let subscription = Subscription {
            group: SERVICE,
            streams: &[streams::INVENTORY, streams::PAYMENT],
            event_types: saga::HANDLED,
            order_key: Some(contracts::events::order_key),
        };
        let ops = OpsApi::of(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            &base,
            Some(&subscription),
        );
        let state = AppState {
            pool: base.pool.clone(),
            users,
            inventory,
            order_events: order_events.clone(),
            wake: base.wake(),
        };
        let service = Server::build(
            &config.service.http,
            DEFAULT_PORT,
            routes::router()
                .with_state(state)
                .merge(contracts::ops::router(ops)),
            &config.order_service_key,
            base.readiness(),
        )
        .await?;
        base.start_relay(&service);
        base.start_effects(&service, subscription, saga::participant(order_events));
        Ok(service)
    }
}
