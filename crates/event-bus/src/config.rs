//! The settings every service that publishes or consumes events shares.

use redis::aio::ConnectionManager;

use crate::Publisher;

/// Stream naming and capping; a service's config flattens it.
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
}

impl EventsConfig {
    /// The full name of stream `name`, e.g. `events:order` under the prefix.
    pub fn stream(&self, name: &str) -> String {
        format!("{}{}", self.event_stream_prefix, name)
    }

    /// A publisher that caps streams at the configured length.
    pub fn publisher(&self, redis: ConnectionManager) -> Publisher {
        Publisher::new(redis, self.event_stream_max_len)
    }
}
