//! A Switchyard service in one builder call.
//!
//! Every service that owns a database and speaks on the bus starts the same way:
//! connect to PostgreSQL and migrate it (its own migrations, then the outbox and inbox
//! tables), connect to Redis, serve its routes behind its service key beside the
//! `/ops` API, and run its outbox relay and, if it consumes, one event consumer. A
//! service says what it is once, as a [`Spec`], and what only it has (its routes'
//! state, its saga's effect, its own background tasks) around one chain:
//!
//! ```text
//! pub const SPEC: Spec = Spec::new("inventory", env!("CARGO_PKG_VERSION"), 8005, &MIGRATOR)
//!     .publishes(&[streams::INVENTORY])
//!     .consumes(&[streams::ORDER, streams::PAYMENT], saga::HANDLED);
//!
//! let host = Host::connect(&SPEC, &config.service, &config.events).await?;
//! let saga = saga::participant(host.stream(streams::INVENTORY));
//! let routes = routes::router().with_state(AppState { pool: host.pool.clone() });
//! host.serve(routes, &config.inventory_service_key)
//!     .consuming(saga)
//!     .start()
//!     .await
//! ```
//!
//! # Layout
//!
//! - [`host`]: [`Spec`] and [`Subscription`], what a service declares; [`Host`], its
//!   connections once made.
//! - [`launch`]: [`Launch`], the builder that turns a host and its routes into a
//!   running [`service_kit::server::Server`].
//! - [`error`]: [`HostError`], why a service did not start.
//! - [`ops`]: the `/ops` routes every service serves (shapes in [`contracts::ops`]).

pub mod error;
pub mod host;
pub mod launch;
pub mod ops;

pub use error::HostError;
pub use host::{Host, Spec, Subscription};
pub use launch::Launch;
pub use ops::Milestones;
