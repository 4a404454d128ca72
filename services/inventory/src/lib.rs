//! The inventory service: products, their stock, and the reservations that hold stock
//! for orders while they are paid.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, the outbox relay, the event consumer and
//!   the routes into a [`service_kit::server::Server`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/products/*` onto them.
//! - [`products`]: the product model, its validation and storage.
//! - [`reservations`]: holding, committing and releasing stock for an order, all lines
//!   or none, without ever overselling.
//! - [`saga`]: what the service does on `order.created`, `payment.succeeded`,
//!   `payment.declined` and `order.cancelled`.

pub mod config;
pub mod products;
pub mod reservations;
pub mod routes;
pub mod saga;
pub mod state;

use contracts::events::streams;
use contracts::ops::OpsApi;
use event_bus::{Foundation, Subscription};
use service_kit::server::Server;

use crate::config::Config;
pub use crate::state::{AppState, SERVICE};

/// The inventory database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The port the inventory service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8005;

/// Builds the inventory service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let base = Foundation::connect(&config.service, &config.events, &MIGRATOR).await?;
        let subscription = Subscription {
            group: SERVICE,
            streams: &[streams::ORDER, streams::PAYMENT],
            event_types: saga::HANDLED,
            order_key: Some(contracts::events::order_key),
        };
        let ops = OpsApi::of(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            &base,
            Some(&subscription),
        );
        let service = Server::build(
            &config.service.http,
            DEFAULT_PORT,
            routes::router()
                .with_state(AppState {
                    pool: base.pool.clone(),
                })
                .merge(contracts::ops::router(ops)),
            &config.inventory_service_key,
            base.readiness(),
        )
        .await?;
        base.start_relay(&service);
        let saga = saga::participant(base.stream(streams::INVENTORY));
        base.start_effects(&service, subscription, saga);
        Ok(service)
    }
}
