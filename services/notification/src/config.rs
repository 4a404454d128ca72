//! The notification service's settings. `notification-service --help` lists them all.

use std::time::Duration;

use clap::Parser;
use contracts::peers::UserServiceArgs;
use service_client::ClientSettings;
use service_kit::config::{Secret, ServiceConfig, parse_secret};

use crate::queue::Backoff;

/// Tells users about their orders (stored notifications and email) and subscribers
/// about events (signed webhooks).
#[derive(Clone, Parser)]
#[command(name = "notification-service", version, about)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// Bearer key that callers (the gateway) must present on this service's routes.
    /// At least 16 characters.
    #[arg(long, env = "NOTIFICATION_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub notification_service_key: Secret,

    /// For recipients' email addresses.
    #[command(flatten)]
    pub user_service: UserServiceArgs,

    /// Where email goes: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with `user:password@` if the server wants it.
    #[arg(
        long,
        env = "SMTP_URL",
        default_value = "smtp://127.0.0.1:1025",
        hide_env_values = true
    )]
    pub smtp_url: String,

    /// The sender of every email, e.g. `Switchyard <orders@example.com>`.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "Switchyard <no-reply@switchyard.local>"
    )]
    pub mail_from: String,

    /// Allow webhook targets on loopback, private and link-local addresses (local
    /// development only).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Milliseconds a webhook receiver has to answer.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub webhook_timeout_ms: u64,

    /// Attempts of an email or a webhook delivery before it is given up (5 or more).
    #[arg(long, env = "DELIVERY_MAX_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(i32).range(5..=50), hide_env_values = true)]
    pub delivery_max_attempts: i32,

    /// Milliseconds before the second attempt; doubled for each further one (with
    /// jitter), up to the maximum.
    #[arg(long, env = "DELIVERY_BACKOFF_BASE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub delivery_backoff_base_ms: u64,

    /// Longest wait between two attempts, in milliseconds.
    #[arg(long, env = "DELIVERY_BACKOFF_MAX_MS", default_value_t = 600_000, value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub delivery_backoff_max_ms: u64,

    /// Milliseconds between two looks for due emails and deliveries when idle. New work
    /// wakes the workers as it commits; the poll finds retries coming due and work left
    /// by another replica.
    #[arg(long, env = "DELIVERY_POLL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..), hide_env_values = true)]
    pub delivery_poll_ms: u64,

    #[command(flatten)]
    pub client: ClientSettings,

    #[command(flatten)]
    pub events: event_bus::EventsConfig,
}

impl Config {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.delivery_backoff_base_ms),
            max: Duration::from_millis(self.delivery_backoff_max_ms),
            max_attempts: self.delivery_max_attempts,
            poll: Duration::from_millis(self.delivery_poll_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Config);
}
