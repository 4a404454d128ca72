//! The settings every service that publishes or consumes events shares.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::consumer::ConsumerConfig;
use crate::publisher::Publisher;

/// Stream naming and capping, and how this service's consumer reads; a service's
/// config flattens it.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsConfig {
    /// Prefix of every event stream name (e.g. `staging:` gives `staging:events:order`),
    /// so several deployments or test runs can share one Redis.
    #[arg(
        long,
        env = "EVENT_STREAM_PREFIX",
        default_value = "",
        hide_env_values = true
    )]
    pub event_stream_prefix: String,

    /// Approximate length at which this service's event stream is capped.
    #[arg(
        long,
        env = "EVENT_STREAM_MAX_LEN",
        default_value_t = 100_000,
        hide_env_values = true
    )]
    pub event_stream_max_len: usize,

    /// Event handlers this service runs at once (each may hold a database connection:
    /// the pool is sized for them unless DATABASE_MAX_CONNECTIONS is set).
    #[arg(long, env = "EVENT_CONSUMER_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024), hide_env_values = true)]
    pub event_consumer_concurrency: u16,

    /// Milliseconds one event handler may run before it is abandoned and the event retried.
    #[arg(long, env = "EVENT_HANDLER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub event_handler_timeout_ms: u64,

    /// Milliseconds an event may stay unacknowledged (its handler failed, or its process
    /// died) before another consumer takes it over and retries it. Keep it above the
    /// handler timeout.
    #[arg(long, env = "EVENT_RETRY_AFTER_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub event_retry_after_ms: u64,

    /// Deliveries after which an event goes to its stream's dead-letter stream.
    #[arg(long, env = "EVENT_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub event_max_deliveries: u64,
}

impl EventsConfig {
    /// The full name of stream `name`, e.g. `events:order` under the prefix.
    pub fn stream(&self, name: &str) -> String {
        format!("{}{}", self.event_stream_prefix, name)
    }

    /// How consumer `group` reads `streams` (full names), with these settings applied.
    pub fn consumer(&self, group: &str, streams: &[&str]) -> ConsumerConfig {
        let mut config = ConsumerConfig::new(group, streams);
        config.concurrency = usize::from(self.event_consumer_concurrency);
        config.handler_timeout = Duration::from_millis(self.event_handler_timeout_ms);
        config.min_idle = Duration::from_millis(self.event_retry_after_ms);
        config.reclaim_interval =
            (config.min_idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
        config.max_deliveries = self.event_max_deliveries;
        config
    }

    /// A publisher that caps streams at the configured length.
    pub fn publisher(&self, redis: ConnectionManager) -> Publisher {
        Publisher::new(redis, self.event_stream_max_len)
    }
}
