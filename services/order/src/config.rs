//! The order service's settings. `order-service --help` lists them all.

use clap::Parser;
use contracts::peers::{InventoryServiceArgs, UserServiceArgs};
use service_client::ClientSettings;
use service_kit::config::{Secret, ServiceConfig, parse_secret};

/// Orders: accepted after checking the user and pricing the lines, then driven by the
/// saga's events to confirmed or cancelled.
#[derive(Clone, Parser)]
#[command(name = "order-service", version, about)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// Bearer key that callers (the gateway) must present on this service's routes.
    /// At least 16 characters.
    #[arg(long, env = "ORDER_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub order_service_key: Secret,

    #[command(flatten)]
    pub user_service: UserServiceArgs,

    #[command(flatten)]
    pub inventory_service: InventoryServiceArgs,

    #[command(flatten)]
    pub client: ClientSettings,

    #[command(flatten)]
    pub events: event_bus::EventsConfig,
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Config);
}
