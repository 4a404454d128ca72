//! The inventory service's settings. `inventory-service --help` lists them all.

use clap::Parser;
use service_kit::config::{Secret, ServiceConfig, parse_secret};

/// Products, stock and the reservations that hold it for orders.
#[derive(Clone, Parser)]
#[command(name = "inventory-service", version, about)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// Bearer key that callers (the gateway, other services) must present on this
    /// service's routes. At least 16 characters.
    #[arg(long, env = "INVENTORY_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub inventory_service_key: Secret,

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
