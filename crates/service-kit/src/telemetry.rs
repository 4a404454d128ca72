//! Logging: `tracing` with an `EnvFilter` from `RUST_LOG`, written either for people
//! (`LOG_FORMAT=pretty`) or as one JSON object a line (`LOG_FORMAT=json`).
//!
//! The JSON format is our own small layer (see [`json`]) rather than
//! `tracing-subscriber`'s, because log collectors want `service` and `request_id` as
//! top-level members of every line, not buried in a list of spans.

pub mod json;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

/// Why logging (or span export) could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is invalid")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    #[error("logging was already set up")]
    AlreadySetUp(#[source] tracing_subscriber::util::TryInitError),
    #[error(transparent)]
    Export(#[from] crate::otel::ExportError),
}

/// Installs the global subscriber for a service binary. Call once, first thing in `main`.
pub fn init(service: &'static str, config: &TelemetryConfig) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&config.rust_log).map_err(TelemetryError::Filter)?;
    let output = match config.log_format {
        LogFormat::Json => json::JsonLayer::stdout(service).boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .try_init()
        .map_err(TelemetryError::AlreadySetUp)?;
    if let Some(endpoint) = config
        .otel_exporter_otlp_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        crate::otel::init(service, endpoint)?;
        tracing::info!(endpoint, "exporting spans over OTLP");
    }
    Ok(())
}

/// `error` and its causes, `: `-separated: one log field for an error that keeps its
/// causes in `source()` rather than in its message.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct Reading(#[source] std::io::Error);

    #[test]
    fn an_errors_causes_follow_its_message() {
        let error = Reading(std::io::Error::other("permission denied"));
        assert_eq!(
            super::causes(&error),
            "reading the config: permission denied"
        );
    }
}
