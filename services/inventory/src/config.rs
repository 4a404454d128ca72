//! The inventory service's settings. `inventory-service --help` lists them all.

use std::path::PathBuf;

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

    #[command(flatten)]
    pub events: event_bus::EventsConfig,

    /// A JSON list of products (`sku`, `name`, `price_cents`, `stock`, as `POST
    /// /products` takes them) created at start-up unless their SKU exists: the demo's
    /// products (`deploy/demo/products.json`). Unset: none.
    #[arg(long, env = "SEED_PRODUCTS_FILE")]
    pub seed_products_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Config);
}
