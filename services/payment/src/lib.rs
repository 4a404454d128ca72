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
use contracts::ops::OpsApi;
use event_bus::{Foundation, Subscription};
use service_kit::server::Server;

use crate::config::Config;
use crate::provider::{GuardedProvider, SimulatedProvider};
use crate::saga::Saga;
pub use crate::state::{AppState, SERVICE};

/// The payment database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

/// The port the payment service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8002;

/// Builds the payment service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let base = Foundation::connect(&config.service, &config.events, &MIGRATOR).await?;
        let subscription = Subscription {
            group: SERVICE,
            streams: &[streams::INVENTORY, streams::ORDER],
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
            &config.payment_service_key,
            base.readiness(),
        )
        .await?;
        base.start_relay(&service);
        let provider = GuardedProvider::new(
            Arc::new(SimulatedProvider::new(config.faults())),
            config.client.breaker(),
            Duration::from_millis(config.payment_provider_timeout_ms),
        );
        let saga = Saga::new(base.pool.clone(), provider, base.stream(streams::PAYMENT));
        base.start_effects(&service, subscription, saga);
        Ok(service)
    }
}
