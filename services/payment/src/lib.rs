//! The payment service: charges an order once its stock is held, refunds the charge
//! when the order is cancelled, and lists payments.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, the card provider, the outbox relay
//!   and the event consumer into a [`service_kit::server::Server`].
//! - [`routes`]: `GET /payments`.
//! - [`payments`]: the payment model and storage.
//! - [`provider`]: the card provider trait, the simulated provider and its guard.
//! - [`saga`]: what the service does on `inventory.reserved` and `order.cancelled`.

pub mod config;
pub mod payments;
pub mod provider;
pub mod routes;
pub mod saga;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use contracts::events::streams;
use service_host::{Host, Spec, Subscription};
use service_kit::server::Server;

use crate::config::Config;
use crate::provider::{GuardedProvider, SimulatedProvider};
use crate::saga::Saga;
pub use crate::state::{AppState, SERVICE};

/// The payment database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// The port the payment service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8002;

/// The payment service: it charges orders whose stock is held and refunds cancelled
/// ones.
pub const SPEC: Spec = Spec {
    name: SERVICE,
    version: env!("CARGO_PKG_VERSION"),
    default_port: DEFAULT_PORT,
    migrator: &MIGRATOR,
    publishes: &[streams::PAYMENT],
    consumes: Some(Subscription {
        streams: &[streams::INVENTORY, streams::ORDER],
        event_types: saga::HANDLED,
        in_key_order: true,
    }),
};

/// Builds the payment service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        let provider = GuardedProvider::new(
            Arc::new(SimulatedProvider::new(config.faults())),
            config.client.breaker(),
            Duration::from_millis(config.payment_provider_timeout_ms),
        );
        let saga = Saga::new(host.pool.clone(), provider, host.stream(streams::PAYMENT));
        let state = AppState {
            pool: host.pool.clone(),
        };
        let service = host
            .serve(
                routes::router().with_state(state),
                &config.payment_service_key,
            )
            .consuming(saga)
            .start()
            .await?;
        Ok(service)
    }
}
