//! The user service's settings. `user-service --help` lists them all.

use clap::{Parser, Subcommand};
use service_kit::config::{Secret, ServiceConfig, parse_secret};

use crate::validation;

/// Users, passwords and signed access tokens.
#[derive(Parser)]
#[command(name = "user-service", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Add a new signing key and retire the current one; the retired key stays in the
    /// JWKS until every token it signed has expired.
    RotateSigningKey,
}

/// Every setting of the user service.
#[derive(Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// Bearer key that callers (the gateway, other services) must present on this
    /// service's routes. At least 16 characters.
    #[arg(long, env = "USER_SERVICE_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub user_service_key: Secret,

    #[command(flatten)]
    pub events: event_bus::EventsConfig,

    /// `iss` claim of issued tokens.
    #[arg(
        long,
        env = "JWT_ISSUER",
        default_value = "switchyard",
        hide_env_values = true
    )]
    pub jwt_issuer: String,

    /// `aud` claim of issued tokens.
    #[arg(
        long,
        env = "JWT_AUDIENCE",
        default_value = "switchyard-api",
        hide_env_values = true
    )]
    pub jwt_audience: String,

    /// Lifetime of an access token in seconds.
    #[arg(long, env = "JWT_TTL_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(60..=86_400), hide_env_values = true)]
    pub jwt_ttl_seconds: u64,

    /// Email of the admin account created at start-up if it does not exist (with
    /// ADMIN_PASSWORD).
    #[arg(
        long,
        env = "ADMIN_EMAIL",
        requires = "admin_password",
        hide_env_values = true
    )]
    pub admin_email: Option<String>,

    /// Password of that admin account; at least 8 characters.
    #[arg(long, env = "ADMIN_PASSWORD", requires = "admin_email", value_parser = parse_admin_password, hide_env_values = true)]
    pub admin_password: Option<Secret>,
}

fn parse_admin_password(value: &str) -> Result<Secret, validation::Invalid> {
    validation::password(value).map(|()| Secret::new(value))
}

/// The admin account to create at start-up.
pub struct AdminAccount {
    pub email: String,
    pub password: Secret,
}

impl Config {
    /// The configured admin, if any, with its email checked like any user's.
    pub fn admin(&self) -> anyhow::Result<Option<AdminAccount>> {
        match (&self.admin_email, &self.admin_password) {
            (Some(email), Some(password)) => {
                let email = validation::email(email)
                    .map_err(|reason| anyhow::anyhow!("ADMIN_EMAIL is invalid: {reason}"))?;
                Ok(Some(AdminAccount {
                    email,
                    password: password.clone(),
                }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    service_kit::settings_documented_test!(super::Cli);
}
