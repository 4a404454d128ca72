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
use service_host::{Host, Spec, Subscription};
use service_kit::server::Server;

use crate::config::Config;
pub use crate::state::{AppState, SERVICE};

/// The inventory database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The port the inventory service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8005;

/// The inventory service: it holds stock for new orders and commits or releases it as
/// their payments go.
pub const SPEC: Spec = Spec {
    name: SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    default_port: DEFAULT_PORT,
    migrator: &MIGRATOR,
    publishes: &[streams::INVENTORY],
    consumes: Some(Subscription {
        streams: &[streams::ORDER, streams::PAYMENT],
        event_types: saga::HANDLED,
        in_key_order: true,
    }),
};

/// Builds the inventory service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        let saga = saga::participant(host.stream(streams::INVENTORY));
        let state = AppState {
            pool: host.pool.clone(),
        };
        let service = host
            .serve(
                routes::router().with_state(state),
                &config.inventory_service_key,
            )
            .consuming(saga)
            .start()
            .await?;
        Ok(service)
    }
}
