//! The user service: accounts, passwords and the access tokens every other route in
//! Switchyard is authorised with.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, password hasher and routes into a
//!   [`service_kit::server::Server`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/auth/*` and
//!   `/api/users/*` onto them. `/internal/*` routes are for other services only.
//! - [`users`]: the user model and its storage; [`validation`]: what a valid email,
//!   password and name are.
//! - [`passwords`]: Argon2id hashing off the async runtime, and constant-time login.
//! - [`signing_keys`] and [`tokens`]: Ed25519 keys in the database (the same for every
//!   replica, rotated by a command) and the JWTs they sign.
//! - [`admin`]: the first admin account, created from the environment at start-up.
//!
//! Registration publishes `user.registered` through the event bus's outbox: the account
//! and its event commit together, and a relay task publishes it.

pub mod admin;
pub mod config;
pub mod passwords;
pub mod routes;
pub mod signing_keys;
pub mod state;
pub mod tokens;
pub mod users;
pub mod validation;

use std::sync::Arc;

use contracts::events::streams;
use contracts::ops::OpsApi;
use event_bus::{Relay, RelayConfig};
use service_kit::ops::Readiness;
use service_kit::server::Server;

use crate::config::Config;
use crate::passwords::Passwords;
pub use crate::state::{AppState, SERVICE};

/// The user database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/user");

/// The port the user service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8001;

/// Builds the user service.
pub struct Application;

impl Application {
    /// Connects to the database and Redis (waiting for them), migrates, makes sure a
    /// signing key and the configured admin exist, and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        // No background work holds a pooled connection: the relay opens its own.
        let pool =
            service_kit::database::connect_and_migrate(&config.service.database, 0, &MIGRATOR)
                .await?;
        event_bus::schema::install(&pool).await?;
        let redis = config.service.redis.connect().await?;
        signing_keys::ensure_one(&pool).await?;
        let passwords = Passwords::new().await?;
        if let Some(admin) = config.admin()? {
            admin::ensure_admin(&pool, &passwords, admin).await?;
        }
        service_kit::metrics::handle();

        let wake = event_bus::Wake::new();
        let state = AppState {
            pool: pool.clone(),
            user_events: config.events.stream(streams::USER),
            passwords,
            tokens: Arc::new(tokens::TokenSettings::from(&config)),
            wake: wake.clone(),
        };
        let readiness = Readiness::new()
            .with_postgres(pool.clone())
            .with_redis(redis.clone());
        let sources = event_bus::ops::Sources {
            pool: pool.clone(),
            redis: redis.clone(),
            subscription: None,
        };
        let ops = OpsApi::new(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            sources,
            readiness.clone(),
        );
        let service = Server::build(
            &config.service.http,
            DEFAULT_PORT,
            routes::router()
                .with_state(state)
                .merge(contracts::ops::router(ops)),
            &config.user_service_key,
            readiness,
        )
        .await?;
        let relay = Relay::new(
            pool,
            config.events.publisher(redis),
            RelayConfig::default(),
            wake,
        );
        service.spawn_task("outbox relay", |cancel| relay.run(cancel));
        Ok(service)
    }
}
