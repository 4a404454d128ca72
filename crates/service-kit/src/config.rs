//! Configuration from the environment.
//!
//! One file: every setting the services share and the parsers they use, so one place
//! says what any variable accepts.
//!
//! Each setting is a clap argument that reads an environment variable, so `--help`
//! documents every variable with its default, and the same struct can be built from
//! arguments in tests. Env values are never shown in `--help` or in errors: some of them
//! are secrets.
//!
//! A service's config struct flattens the pieces here it needs and is parsed with
//! [`parse`], which turns clap's multi-line errors into the one line an operator needs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, ValueEnum};

/// Where the HTTP server listens, and how long it gives requests.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Port to listen on (all interfaces). Ignored when LISTEN_ADDR is set.
    #[arg(long, env = "PORT", hide_env_values = true)]
    pub port: Option<u16>,

    /// Full listen address, e.g. 127.0.0.1:8001; takes precedence over PORT.
    #[arg(long, env = "LISTEN_ADDR", hide_env_values = true)]
    pub listen_addr: Option<SocketAddr>,

    /// Seconds a request may run before it is answered with 504.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), hide_env_values = true)]
    pub request_timeout_seconds: u64,

    /// Seconds in-flight requests and background tasks get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600), hide_env_values = true)]
    pub shutdown_timeout_seconds: u64,
}

impl HttpConfig {
    /// The address to bind: LISTEN_ADDR, else 0.0.0.0:PORT, else 0.0.0.0:`default_port`.
    pub fn listen_addr(&self, default_port: u16) -> SocketAddr {
        self.listen_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.port.unwrap_or(default_port))))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }
}

/// The service's own PostgreSQL database.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of this service's database, e.g. postgres://user:pass@host:5432/users.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_database_url, hide_env_values = true)]
    pub database_url: sqlx::postgres::PgConnectOptions,

    /// Largest number of pooled database connections. Unset: 8 for requests, plus what
    /// the service's background work can hold at once (one per event handler running
    /// at once: EVENT_CONSUMER_CONCURRENCY). The outbox relay has one connection of its
    /// own besides.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000), hide_env_values = true)]
    pub database_max_connections: Option<u32>,

    /// Seconds to keep retrying the first connection while the database is not up yet.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), hide_env_values = true)]
    pub database_connect_timeout_seconds: u64,
}

impl DatabaseConfig {
    /// Connections kept for requests when the pool is sized from the work it serves.
    pub const FOR_REQUESTS: u32 = 8;

    /// The pool's size: as configured, or enough for requests and `background`
    /// connections held by background work (relay, event handlers).
    pub fn max_connections(&self, background: u32) -> u32 {
        self.database_max_connections
            .unwrap_or(Self::FOR_REQUESTS + background)
    }
}

/// Why a setting's value was refused: clap prints it after the setting's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSetting {
    #[error("expected a postgres:// or postgresql:// URL")]
    DatabaseScheme,
    /// The parser's own message may quote the URL, password included: it is dropped.
    #[error("not a valid PostgreSQL connection URL")]
    DatabaseUrl,
    #[error("expected a redis:// or rediss:// URL, or redis+cluster://host:port,host:port")]
    RedisUrl,
    #[error("must be at least 16 characters")]
    SecretTooShort,
    #[error("must be visible ASCII characters only")]
    SecretNotVisible,
}

fn parse_database_url(value: &str) -> Result<sqlx::postgres::PgConnectOptions, InvalidSetting> {
    let scheme_ok = value.starts_with("postgres://") || value.starts_with("postgresql://");
    if !scheme_ok {
        return Err(InvalidSetting::DatabaseScheme);
    }
    value.parse().map_err(|_| InvalidSetting::DatabaseUrl)
}

/// The Redis server (or cluster) shared by the event bus and the gateway's rate limiter.
#[derive(Debug, Clone, Args)]
pub struct RedisConfig {
    /// Redis URL: one server (redis://127.0.0.1:6379, rediss:// for TLS) or a Redis
    /// Cluster by some of its nodes (redis+cluster://host:7000,host:7001,
    /// rediss+cluster:// for TLS), from which the rest of the cluster is learnt.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", value_parser = parse_redis_url, hide_env_values = true)]
    pub redis_url: RedisUrl,

    /// Seconds to keep retrying the first connection while Redis is not up yet.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), hide_env_values = true)]
    pub redis_connect_timeout_seconds: u64,
}

impl RedisConfig {
    /// Connects to `REDIS_URL`, waiting for Redis to come up as long as configured.
    pub async fn connect(&self) -> Result<crate::redis::Connection, crate::start::StartError> {
        crate::redis::connect(
            &self.redis_url.0,
            std::time::Duration::from_secs(self.redis_connect_timeout_seconds),
        )
        .await
    }

    /// A client for `REDIS_URL`, for those that open connections of their own (a
    /// consumer's blocking reads, each gateway worker's limiter).
    pub fn client(&self) -> redis::RedisResult<crate::redis::Client> {
        crate::redis::Client::open(&self.redis_url.0)
    }
}

/// A Redis URL that has been checked to parse.
#[derive(Clone)]
pub struct RedisUrl(pub String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // It may hold a password.
        f.write_str("RedisUrl(..)")
    }
}

fn parse_redis_url(value: &str) -> Result<RedisUrl, InvalidSetting> {
    crate::redis::Client::open(value)
        .map(|_| RedisUrl(value.to_owned()))
        .map_err(|_| InvalidSetting::RedisUrl)
}

/// What every service with a database has: where it listens, its database, Redis and
/// logs. A service's config flattens this and adds its own settings; the gateway, which
/// has no database, flattens the pieces it needs instead.
#[derive(Debug, Clone, Args)]
pub struct ServiceConfig {
    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub redis: RedisConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// How logs are written.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// Log filter, e.g. `info` or `info,sqlx=warn,user_service=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", hide_env_values = true)]
    pub rust_log: String,

    /// Log line format: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, hide_env_values = true)]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector to send spans to, e.g. `http://jaeger:4318`; unset: none are
    /// sent. `OTEL_BSP_SCHEDULE_DELAY` (ms) sets how often batches go out.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", hide_env_values = true)]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// See [`TelemetryConfig::log_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A bearer key for internal routes: printed as `***` wherever it is debugged.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be shown; see [`parse_secret`] for keys.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Value parser for secrets: at least 16 characters, so a placeholder is not mistaken
/// for a key.
pub fn parse_secret(value: &str) -> Result<Secret, InvalidSetting> {
    if value.chars().count() < 16 {
        return Err(InvalidSetting::SecretTooShort);
    }
    if value.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(InvalidSetting::SecretNotVisible);
    }
    Ok(Secret(value.to_owned()))
}

/// Reads `.env` from the working directory, if there is one, without overriding
/// variables that are already set. Only the working directory is read, never a parent:
/// a stray file elsewhere must not configure a production process.
pub fn load_dotenv() {
    let path = Path::new(".env");
    if path.is_file()
        && let Err(error) = dotenvy::from_path(path)
    {
        eprintln!("error: .env could not be read: {error}");
        std::process::exit(2);
    }
}

/// Parses `T` from the command line and the environment (after `.env`). On a missing or
/// malformed setting it prints one line naming the variable and exits with status 2;
/// `--help` and `--version` print and exit 0.
pub fn parse<T: Parser>() -> T {
    load_dotenv();
    match T::try_parse() {
        Ok(config) => config,
        Err(error) => exit_with(error),
    }
}

fn exit_with(error: clap::Error) -> ! {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
        _ => {
            eprintln!("error: {}", one_line(&error));
            std::process::exit(2);
        }
    }
}

/// Renders a clap error as one line that names the variable and never its value.
pub fn one_line(error: &clap::Error) -> String {
    let setting = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(variable_name(arg)),
        Some(ContextValue::Strings(args)) => Some(
            args.iter()
                .map(|a| variable_name(a))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let reason = match error.kind() {
        ErrorKind::MissingRequiredArgument => "is not set".to_owned(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            // clap's own text quotes the value; we keep only the reason after it.
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            let reason = first.rsplit_once("': ").map(|(_, r)| r.trim());
            match reason {
                Some(reason) if !reason.is_empty() => format!("is invalid: {reason}"),
                _ => "is invalid".to_owned(),
            }
        }
        _ => {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            return first.trim_start_matches("error: ").to_owned();
        }
    };
    match setting {
        Some(setting) => format!("{setting} {reason}"),
        None => format!("a setting {reason}"),
    }
}

/// `--database-url <DATABASE_URL>` → `DATABASE_URL`: every setting's value name is its
/// environment variable.
fn variable_name(arg: &str) -> String {
    match (arg.find('<'), arg.rfind('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_owned(),
        _ => arg.trim_start_matches('-').replace('-', "_").to_uppercase(),
    }
}

/// Settings of `command` (and its subcommands) an operator could not find: those
/// without an environment variable or without help text. Each binary's tests assert
/// there are none.
pub fn undocumented_settings(command: &clap::Command) -> Vec<String> {
    let mut missing: Vec<String> = command
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .filter(|arg| arg.get_env().is_none() || arg.get_help().is_none())
        .map(|arg| arg.get_id().to_string())
        .collect();
    for sub in command.get_subcommands() {
        missing.extend(undocumented_settings(sub));
    }
    missing
}

/// The test every service's settings have: each has a variable, a help text, and a line
/// in the workspace's `.env.example` ([`assert_documented`]). `$settings` is the clap
/// struct the service parses.
#[macro_export]
macro_rules! settings_documented_test {
    ($settings:ty) => {
        #[test]
        fn every_setting_has_a_variable_a_help_text_and_an_example_value() {
            $crate::config::assert_documented(
                &<$settings as ::clap::CommandFactory>::command(),
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example")),
            );
        }
    };
}

/// Panics (for a test) naming every setting of `command` that lacks a variable or a
/// help text, or that `example` (an `.env.example`'s text) does not list.
pub fn assert_documented(command: &clap::Command, example: &str) {
    assert_eq!(
        undocumented_settings(command),
        Vec::<String>::new(),
        "settings without a variable or help"
    );
    assert_eq!(
        missing_from_example(command, example),
        Vec::<String>::new(),
        "variables missing from .env.example"
    );
}

/// Every environment variable `command` reads.
pub fn environment_variables(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// The variables `command` reads that `example` (an `.env.example`'s text) does not
/// mention as `NAME=`, commented out or not.
pub fn missing_from_example(command: &clap::Command, example: &str) -> Vec<String> {
    environment_variables(command)
        .into_iter()
        .filter(|var| !example.contains(&format!("{var}=")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        http: HttpConfig,
    }

    fn error_line(args: &[&str]) -> String {
        let error = Example::try_parse_from(args).expect_err("parsing should fail");
        one_line(&error)
    }

    #[test]
    fn a_missing_variable_is_named_in_one_line() {
        // The test environment must not provide it.
        if std::env::var_os("DATABASE_URL").is_some() {
            return;
        }
        assert_eq!(error_line(&["x"]), "DATABASE_URL is not set");
    }

    #[test]
    fn a_malformed_database_url_is_named_without_echoing_the_value() {
        let line = error_line(&["x", "--database-url", "mysql://root:hunter2@db/users"]);
        assert!(line.starts_with("DATABASE_URL is invalid"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_malformed_number_is_named() {
        let line = error_line(&[
            "x",
            "--database-url",
            "postgres://localhost/db",
            "--request-timeout-seconds",
            "soon",
        ]);
        assert!(
            line.starts_with("REQUEST_TIMEOUT_SECONDS is invalid"),
            "{line}"
        );
    }

    #[test]
    fn listen_addr_wins_over_port() {
        let config = Example::try_parse_from([
            "x",
            "--database-url",
            "postgres://localhost/db",
            "--port",
            "9000",
            "--listen-addr",
            "127.0.0.1:7000",
        ])
        .expect("valid");
        assert_eq!(config.http.listen_addr(1).port(), 7000);
    }

    #[test]
    fn secrets_shorter_than_sixteen_characters_are_refused() {
        assert!(parse_secret("short").is_err());
        assert!(parse_secret("a-long-enough-secret").is_ok());
        assert_eq!(
            format!("{:?}", parse_secret("a-long-enough-secret")),
            "Ok(***)"
        );
    }
}
