//! The inventory service: products, their stock, and the reservations that hold stock
//! for orders while they are paid.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - `contract` (its tests): what it reads of each event it consumes and of each peer
//!   answer it decodes, checked against the pact file.
//! - [`Application`]: wires the database, Redis, the outbox relay, the event consumer and
//!   the routes into a [`service_kit::server::Server`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/products/*` onto them.
//! - [`products`]: the product model, its validation and storage.
//! - [`reservations`]: holding, committing and releasing stock for an order, all lines
//!   or none, without ever overselling.
//! - [`seed`]: the demo products created at start-up (`SEED_PRODUCTS_FILE`).
//! - [`saga`]: what the service does on `order.created`, `payment.succeeded`,
//!   `payment.declined` and `order.cancelled`.

pub mod config;
#[cfg(test)]
mod contract;
pub mod products;
pub mod reservations;
pub mod routes;
pub mod saga;
pub mod seed;
pub mod state;

use contracts::events::streams;
use service_host::{Host, Spec};
use service_kit::server::Server;

use crate::config::Config;
pub use crate::state::{AppState, SERVICE};

/// The inventory database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The inventory service: it holds stock for new orders and commits or releases it as their
/// payments go. It listens on 8005 unless told otherwise.
pub const SPEC: Spec = Spec::new(SERVICE, env!("CARGO_PKG_VERSION"), 8005, &MIGRATOR)
    .publishes(&[streams::INVENTORY])
    .consumes(&[streams::ORDER, streams::PAYMENT], saga::HANDLED);

/// Builds the inventory service.
pub struct Application;

impl Application {
    /// The service on its host: the products API and the saga participant that holds,
    /// commits and releases stock.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let seed = config.seed_products_file.as_deref().map(seed::read);
        let seed = seed.transpose()?.unwrap_or_default();
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        if !seed.is_empty() {
            let created = seed::plant(&host.pool, &seed).await?;
            tracing::info!(created, of = seed.len(), "seed products created");
        }
        let saga = saga::participant(host.stream(streams::INVENTORY));
        let routes = routes::router().with_state(AppState {
            pool: host.pool.clone(),
        });
        let service = host.serve(routes, &config.inventory_service_key);
        Ok(service.consuming(saga).start().await?)
    }
}
