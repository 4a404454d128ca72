//! The gateway's settings. `gateway --help` lists them all.

use std::net::IpAddr;

use clap::Parser;
use contracts::peers::{
    InventoryServiceArgs, NotificationServiceArgs, OrderServiceArgs, PaymentServiceArgs,
    UserServiceArgs,
};
use service_client::{ClientSettings, PeerConfig};
use service_kit::config::{HttpConfig, RedisConfig, TelemetryConfig};

/// The API gateway: routes /api to the services, verifies tokens, limits rates exactly
/// across replicas, aggregates the dashboard.
#[derive(Clone, Parser)]
#[command(name = "gateway", version, about)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub redis: RedisConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Threads serving requests, each running its own single-threaded runtime with its
    /// own upstream connections; unset: one per core; 0: serve on the main runtime's
    /// work-stealing threads instead.
    #[arg(long, env = "HTTP_WORKERS", value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub http_workers: Option<u16>,

    /// The `iss` every token must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "switchyard")]
    pub jwt_issuer: String,

    /// The `aud` every token must carry.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "switchyard-api")]
    pub jwt_audience: String,

    /// Requests a user (or, without a valid token, a client IP) may make in any 60 s;
    /// 0 turns rate limiting off (for benchmarks of the bare proxy).
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_per_minute: u32,

    /// Prefix of the rate-limit keys in Redis, so deployments can share one.
    #[arg(long, env = "RATE_LIMIT_KEY_PREFIX", default_value = "ratelimit:")]
    pub rate_limit_key_prefix: String,

    /// Comma-separated addresses of proxies in front of the gateway whose
    /// `X-Forwarded-For` is believed; from anyone else it is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = parse_addresses)]
    pub trusted_proxies: Addresses,

    /// Comma-separated origins browsers may call the API from (CORS), each
    /// `scheme://host[:port]` with no path or trailing slash; empty: none.
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,

    /// Jaeger's UI (e.g. http://localhost:16686): the ops console links an order's
    /// trace id to `{url}/trace/{id}`. Empty: the id is shown without a link.
    #[arg(long, env = "TRACE_UI_URL", default_value = "")]
    pub trace_ui_url: String,

    /// Milliseconds each backend has to answer for the dashboard.
    #[arg(long, env = "DASHBOARD_TIMEOUT_MS", default_value_t = 1_500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub dashboard_timeout_ms: u64,

    #[command(flatten)]
    pub user_service: UserServiceArgs,

    #[command(flatten)]
    pub inventory_service: InventoryServiceArgs,

    #[command(flatten)]
    pub order_service: OrderServiceArgs,

    #[command(flatten)]
    pub payment_service: PaymentServiceArgs,

    #[command(flatten)]
    pub notification_service: NotificationServiceArgs,

    #[command(flatten)]
    pub client: ClientSettings,
}

impl Config {
    /// The services behind the gateway, each with its settings, named as the route
    /// table ([`crate::routes::TABLE`]) and the console name them.
    pub fn services(&self, settings: &ClientSettings) -> Vec<PeerConfig> {
        vec![
            self.user_service.peer(settings),
            self.order_service.peer(settings),
            self.inventory_service.peer(settings),
            self.payment_service.peer(settings),
            self.notification_service.peer(settings),
        ]
    }

    /// How many HTTP worker threads to run (0: none, serve on the main runtime).
    pub fn workers(&self) -> usize {
        self.http_workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        )
    }
}

/// A list of IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(pub Vec<IpAddr>);

/// An entry of a list of addresses that is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{entry}` is not an IP address")]
pub struct NotAnAddress {
    entry: String,
    #[source]
    cause: std::net::AddrParseError,
}

fn parse_addresses(value: &str) -> Result<Addresses, NotAnAddress> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|cause| NotAnAddress {
                entry: s.to_owned(),
                cause,
            })
        })
        .collect::<Result<_, _>>()
        .map(Addresses)
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Config);
}
