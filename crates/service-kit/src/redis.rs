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

/// A client for `url` whose connections send each command at once (`TCP_NODELAY`).
///
/// redis-rs leaves Nagle's algorithm on: a command written while an earlier one is
/// still unacknowledged waits for that acknowledgement, which a request-and-reply
/// protocol pays in latency (the gateway's rate-limit calls, the event bus's reads).
pub fn client(url: &str) -> redis::RedisResult<redis::Client> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// Connects to `REDIS_URL`, waiting for Redis to come up as long as configured.
pub async fn connect(config: &RedisConfig) -> anyhow::Result<ConnectionManager> {
    let timeout = Duration::from_secs(config.redis_connect_timeout_seconds);
    let client = client(config.redis_url.0.as_str()).context("REDIS_URL is invalid")?;
    wait_for("redis", timeout, || ConnectionManager::new(client.clone()))
        .await
        .with_context(|| {
            format!(
                "could not connect to Redis (REDIS_URL) within {}s",
                timeout.as_secs()
            )
        })
}
