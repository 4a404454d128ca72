//! The payment service's settings. `payment-service --help` lists them all.

use std::time::Duration;

use clap::Parser;
use service_client::ClientSettings;
use service_kit::config::{Secret, ServiceConfig, parse_secret};

use crate::provider::Faults;

/// Payments: charges an order once its stock is held, refunds it when the order is
/// cancelled.
#[derive(Clone, Parser)]
#[command(name = "payment-service", version, about)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// Bearer key that callers (the gateway) must present on this service's routes.
    /// At least 16 characters.
    #[arg(long, env = "PAYMENT_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub payment_service_key: Secret,

    /// Fraction (0 to 1) of calls to the simulated card provider that fail as an
    /// outage would, to exercise retries and the breaker. 0 in production.
    #[arg(long, env = "PAYMENT_PROVIDER_FAILURE_RATE", default_value_t = 0.0, value_parser = parse_rate, hide_env_values = true)]
    pub payment_provider_failure_rate: f64,

    /// Milliseconds the simulated card provider takes to answer.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_DELAY_MS",
        default_value_t = 0,
        hide_env_values = true
    )]
    pub payment_provider_delay_ms: u64,

    /// Milliseconds a call to the card provider may take before it counts as failed
    /// (the event is then retried).
    #[arg(long, env = "PAYMENT_PROVIDER_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub payment_provider_timeout_ms: u64,

    /// The breaker around the card provider uses the `HTTP_CLIENT_BREAKER_*` settings.
    #[command(flatten)]
    pub client: ClientSettings,

    #[command(flatten)]
    pub events: event_bus::EventsConfig,
}

impl Config {
    /// The simulated provider's fault mode.
    pub fn faults(&self) -> Faults {
        Faults {
            failure_rate: self.payment_provider_failure_rate,
            delay: Duration::from_millis(self.payment_provider_delay_ms),
        }
    }
}

/// A failure rate that is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a number from 0 to 1")]
pub struct NotARate(String);

fn parse_rate(value: &str) -> Result<f64, NotARate> {
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(NotARate(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Config);
}
