//! Test-only helpers shared by every crate's integration tests.
//!
//! # Layout
//!
//! - [`TestDatabase`]: a fresh, empty PostgreSQL database per test, dropped afterwards,
//!   on the server named by `TEST_DATABASE_URL` (`./scripts/test` sets it).
//! - [`redis_url`], [`redis`]: the Redis server (or cluster) named by `TEST_REDIS_URL`;
//!   [`delete_keys`] tidies it up from a `Drop`.
//! - [`TestRedis`]: a Redis of the test's own, to stop and restart.
//! - [`TestSmtp`]: a real SMTP server (mailin's protocol engine) to stop and restart.
//! - [`StreamKeys`]: a unique event-stream prefix whose keys are deleted afterwards.
//! - [`service_settings`]: a service's settings for a test (port 0, its database, the
//!   test Redis, its streams), typed, for the test to change.
//! - [`assert_problem`]: checks a problem+json answer.
//! - [`ServiceProcess`]: a service binary started as a real process, its stdout captured
//!   line by line, so tests can send it signals and read its logs; [`workspace_binary`]
//!   finds any service's binary for whole-system tests.
//!
//! Tests never share a database, so they run in parallel and leave nothing behind.

mod database;
pub mod http;
pub mod keys;
mod process;
mod redis_cluster;
mod redis_server;
mod settings;
mod smtp;
mod stream_keys;
pub mod streams;
mod user_service;
mod wait;

pub use database::{TestDatabase, server_url as database_server_url};
pub use http::assert_problem;
pub use process::{ServiceProcess, workspace_binary};
pub use redis_cluster::TestRedisCluster;
pub use redis_server::{
    TestRedis, delete_keys, delete_keys_matching, redis, redis_client, redis_url,
};
pub use settings::service_settings;
pub use smtp::{ReceivedMail, TestSmtp};
pub use stream_keys::StreamKeys;
pub use user_service::UserService;
pub use wait::eventually;
