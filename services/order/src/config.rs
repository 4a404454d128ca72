//! The order service's settings. `order-service --help` lists them all.

use clap::Parser;
use service_client::{ClientSettings, PeerConfig};
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

    /// Base URL of the user service, e.g. `http://user:8001`.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    pub user_service_url: String,

    /// The user service's key.
    #[arg(long, env = "USER_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub user_service_key: Secret,

    /// Base URL of the inventory service, e.g. `http://inventory:8005`.
    #[arg(
        long,
        env = "INVENTORY_SERVICE_URL",
        default_value = "http://127.0.0.1:8005"
    )]
    pub inventory_service_url: String,

    /// The inventory service's key.
    #[arg(long, env = "INVENTORY_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub inventory_service_key: Secret,

    #[command(flatten)]
    pub client: ClientSettings,

    #[command(flatten)]
    pub events: event_bus::EventsConfig,
}

impl Config {
    pub fn user_peer(&self) -> PeerConfig {
        PeerConfig::new(
            "user",
            &self.user_service_url,
            self.user_service_key.clone(),
            &self.client,
        )
    }

    pub fn inventory_peer(&self) -> PeerConfig {
        PeerConfig::new(
            "inventory",
            &self.inventory_service_url,
            self.inventory_service_key.clone(),
            &self.client,
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use service_kit::config::{missing_from_example, undocumented_settings};

    use super::Config;

    #[test]
    fn every_setting_has_a_variable_a_help_text_and_an_example_value() {
        let command = Config::command();
        assert_eq!(undocumented_settings(&command), Vec::<String>::new());
        let example = include_str!("../../../.env.example");
        assert_eq!(
            missing_from_example(&command, example),
            Vec::<String>::new()
        );
    }
}
