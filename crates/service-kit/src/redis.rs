//! A Redis connection that reconnects by itself.
//!
//! `ConnectionManager` is one multiplexed connection, cheap to clone, that re-establishes
//! itself after Redis restarts; the first connection waits for Redis like the database
//! does.

use std::time::Duration;

use anyhow::Context;
use redis::aio::ConnectionManager;

use crate::config::RedisConfig;
use crate::wait::wait_for;

/// Connects to `REDIS_URL`, waiting for Redis to come up as long as configured.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<ConnectionManager> {
    let timeout = Duration::from_secs(config.redis_connect_timeout_seconds);
    let client =
        redis::Client::open(config.redis_url.0.as_str()).context("REDIS_URL is invalid")?;
    wait_for("redis", timeout, || ConnectionManager::new(client.clone()))
        .await
        .with_context(|| {
            format!(
                "could not connect to Redis (REDIS_URL) within {}s",
                timeout.as_secs()
            )
        })
}
