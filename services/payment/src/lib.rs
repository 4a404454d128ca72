//! The payment service: charges an order once its stock is held, refunds the charge
//! when the order is cancelled, and lists payments.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - `contract` (its tests): what it reads of each event it consumes and of each peer
//!   answer it decodes, checked against the pact file.
//! - [`Application`]: wires the database, Redis, the card provider, the outbox relay
//!   and the event consumer into a [`service_kit::server::Server`].
//! - [`routes`]: `GET /payments`.
//! - [`payments`]: the payment model and storage.
//! - [`provider`]: the card provider trait, the simulated provider and its guard.
//! - [`saga`]: what the service does on `inventory.reserved` and `order.cancelled`.

pub mod config;
#[cfg(test)]
mod contract;
pub mod payments;
pub mod provider;
pub mod routes;
pub mod saga;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use contracts::events::streams;
use service_host::{Host, Spec};
use service_kit::server::Server;

use crate::config::Config;
use crate::provider::{GuardedProvider, SimulatedProvider};
use crate::saga::Saga;
pub use crate::state::{AppState, SERVICE};

/// The payment database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// The payment service: it charges orders whose stock is held and refunds cancelled ones.
/// It listens on 8002 unless told otherwise.
pub const SPEC: Spec = Spec::new(SERVICE, env!("CARGO_PKG_VERSION"), 8002, &MIGRATOR)
    .publishes(&[streams::PAYMENT])
    .consumes(&[streams::INVENTORY, streams::ORDER], saga::HANDLED);

/// Builds the payment service.
pub struct Application;

impl Application {
    /// The service on its host: the payments API and the saga participant that charges
    /// through the guarded provider and refunds.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        let provider = GuardedProvider::new(
            Arc::new(SimulatedProvider::new(config.faults())),
            config.client.breaker(),
            Duration::from_millis(config.payment_provider_timeout_ms),
        );
        let saga = Saga::new(host.pool.clone(), provider, host.stream(streams::PAYMENT));
        let routes = routes::router().with_state(AppState {
            pool: host.pool.clone(),
        });
        let service = host.serve(routes, &config.payment_service_key);
        Ok(service.consuming(saga).start().await?)
    }
}
