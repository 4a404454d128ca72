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

    #[command(flatten)]
    pub events: event_bus::EventsConfig,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_setting_has_a_variable_a_help_text_and_an_example_value() {
        service_kit::config::assert_documented(
            &super::Config::command(),
            include_str!("../../../.env.example"),
        );
    }
}
