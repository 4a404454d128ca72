//! The settings every service that publishes or consumes events shares.

use std::time::Duration;

use crate::consumer::ConsumerConfig;
use crate::publisher::Publisher;
use crate::stream::Stream;

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

    /// Partitions of every event stream: 1 keeps each domain's events on one stream
    /// (`events:order`); more spread each stream over a Redis Cluster's masters
    /// (`{events:order:0}`, `{events:order:1}`, ...), one entity's events (an order's)
    /// always on one. Every service of a deployment must use the same number.
    #[arg(long, env = "EVENT_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024), hide_env_values = true)]
    pub event_partitions: u16,

    /// Replicas that must hold an event before the outbox counts it published
    /// (`WAIT`): with 1 on a Redis with replicas (a cluster's), a master that dies
    /// before replicating loses no event, because the outbox publishes it again. 0
    /// waits for none (a single server).
    #[arg(long, env = "EVENT_REPLICA_ACKS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=16), hide_env_values = true)]
    pub event_replica_acks: u16,

    /// Approximate length at which each event stream partition is capped.
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
    /// Stream `name` under the prefix (e.g. `events:order`), in the configured
    /// partitions.
    pub fn stream(&self, name: &str) -> Stream {
        Stream::new(
            format!("{}{}", self.event_stream_prefix, name),
            self.event_partitions,
        )
    }

    /// How consumer `group` reads `streams` (partitions' keys), with these settings
    /// applied.
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

    /// A publisher that caps streams at the configured length and waits for the
    /// configured replicas.
    pub fn publisher(&self, redis: service_kit::redis::Connection) -> Publisher {
        Publisher::new(redis, self.event_stream_max_len).with_replica_acks(self.event_replica_acks)
    }
}
