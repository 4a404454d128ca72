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
use service_host::{Host, Spec};
use service_kit::server::Server;

use crate::config::Config;
use crate::passwords::Passwords;
pub use crate::state::{AppState, SERVICE};

/// The user database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/user");

/// The user service: it publishes each registration and consumes nothing. It listens on
/// 8001 unless told otherwise.
pub const SPEC: Spec =
    Spec::new(SERVICE, env!("CARGO_PKG_VERSION"), 8001, &MIGRATOR).publishes(&[streams::USER]);

/// Builds the user service.
pub struct Application;

impl Application {
    /// Connects to the database and Redis (waiting for them), migrates, makes sure a
    /// signing key and the configured admin exist, and binds the listen address.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        signing_keys::ensure_one(&host.pool).await?;
        let passwords = Passwords::new().await?;
        if let Some(admin) = config.admin()? {
            admin::ensure_admin(&host.pool, &passwords, admin).await?;
        }
        let state = AppState {
            pool: host.pool.clone(),
            user_events: host.stream(streams::USER),
            passwords,
            tokens: Arc::new(tokens::TokenSettings::from(&config)),
            wake: host.wake(),
        };
        let service = host
            .serve(routes::router().with_state(state), &config.user_service_key)
            .start()
            .await?;
        Ok(service)
    }
}
