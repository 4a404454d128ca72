//! Per-peer settings.
//!
//! [`ClientSettings`] holds the defaults every peer starts from, read from the
//! environment (`HTTP_CLIENT_*`) so an operator can tune them without a rebuild; each
//! service adds a peer's URL and key (`<NAME>_SERVICE_URL`, `<NAME>_SERVICE_KEY`) and
//! builds a [`PeerConfig`], which code can still adjust field by field.

use std::time::Duration;

use service_kit::config::Secret;

use crate::breaker::BreakerConfig;

/// Defaults for calls to any peer. Every field is an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientSettings {
    /// Milliseconds to establish a connection to a peer.
    #[arg(long, env = "HTTP_CLIENT_CONNECT_TIMEOUT_MS", default_value_t = defaults::CONNECT_TIMEOUT_MS, hide_env_values = true)]
    pub http_client_connect_timeout_ms: u64,

    /// Milliseconds one attempt of a call may take.
    #[arg(long, env = "HTTP_CLIENT_ATTEMPT_TIMEOUT_MS", default_value_t = defaults::ATTEMPT_TIMEOUT_MS, hide_env_values = true)]
    pub http_client_attempt_timeout_ms: u64,

    /// Milliseconds a whole call may take, retries included.
    #[arg(long, env = "HTTP_CLIENT_DEADLINE_MS", default_value_t = defaults::DEADLINE_MS, hide_env_values = true)]
    pub http_client_deadline_ms: u64,

    /// Attempts per call, the first included.
    #[arg(long, env = "HTTP_CLIENT_MAX_ATTEMPTS", default_value_t = defaults::MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=10), hide_env_values = true)]
    pub http_client_max_attempts: u32,

    /// Milliseconds of the first backoff; each retry doubles it, up to the cap.
    #[arg(long, env = "HTTP_CLIENT_BACKOFF_BASE_MS", default_value_t = defaults::BACKOFF_BASE_MS, hide_env_values = true)]
    pub http_client_backoff_base_ms: u64,

    /// Largest backoff in milliseconds.
    #[arg(long, env = "HTTP_CLIENT_BACKOFF_MAX_MS", default_value_t = defaults::BACKOFF_MAX_MS, hide_env_values = true)]
    pub http_client_backoff_max_ms: u64,

    /// Longest `Retry-After` honoured, in milliseconds; a longer one ends the call.
    #[arg(long, env = "HTTP_CLIENT_RETRY_AFTER_MAX_MS", default_value_t = defaults::RETRY_AFTER_MAX_MS, hide_env_values = true)]
    pub http_client_retry_after_max_ms: u64,

    /// Retries allowed as a fraction of recent calls (0.2: one retry per five calls).
    #[arg(long, env = "HTTP_CLIENT_RETRY_BUDGET_RATIO", default_value_t = defaults::RETRY_BUDGET_RATIO, hide_env_values = true)]
    pub http_client_retry_budget_ratio: f32,

    /// Retries per second always allowed, however few calls were made.
    #[arg(long, env = "HTTP_CLIENT_RETRY_BUDGET_MIN_PER_SECOND", default_value_t = defaults::RETRY_BUDGET_MIN_PER_SECOND, hide_env_values = true)]
    pub http_client_retry_budget_min_per_second: u32,

    /// Outcomes the breaker's failure and slow-call rates are computed over.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_WINDOW", default_value_t = defaults::BREAKER_WINDOW, value_parser = clap::value_parser!(u32).range(1..=10_000), hide_env_values = true)]
    pub http_client_breaker_window: u32,

    /// Calls the window must hold before a rate can open the breaker.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_MINIMUM_CALLS", default_value_t = defaults::BREAKER_MINIMUM_CALLS, hide_env_values = true)]
    pub http_client_breaker_minimum_calls: u32,

    /// Failure rate (0 to 1) in the window that opens the breaker.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_FAILURE_RATE", default_value_t = defaults::BREAKER_FAILURE_RATE, hide_env_values = true)]
    pub http_client_breaker_failure_rate: f32,

    /// Slow-call rate (0 to 1) in the window that opens the breaker.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_SLOW_CALL_RATE", default_value_t = defaults::BREAKER_SLOW_CALL_RATE, hide_env_values = true)]
    pub http_client_breaker_slow_call_rate: f32,

    /// Milliseconds after which a successful call counts as slow.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_SLOW_CALL_MS", default_value_t = defaults::BREAKER_SLOW_CALL_MS, hide_env_values = true)]
    pub http_client_breaker_slow_call_ms: u64,

    /// Consecutive failures that open the breaker whatever the window holds, so a quiet
    /// peer trips too.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_CONSECUTIVE_FAILURES", default_value_t = defaults::BREAKER_CONSECUTIVE_FAILURES, hide_env_values = true)]
    pub http_client_breaker_consecutive_failures: u32,

    /// Milliseconds the breaker stays open the first time; doubled on each failed probe.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_OPEN_MS", default_value_t = defaults::BREAKER_OPEN_MS, hide_env_values = true)]
    pub http_client_breaker_open_ms: u64,

    /// Longest open wait in milliseconds.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_OPEN_MAX_MS", default_value_t = defaults::BREAKER_OPEN_MAX_MS, hide_env_values = true)]
    pub http_client_breaker_open_max_ms: u64,

    /// Probe calls let through when half-open; all must succeed to close.
    #[arg(long, env = "HTTP_CLIENT_BREAKER_PROBES", default_value_t = defaults::BREAKER_PROBES, value_parser = clap::value_parser!(u32).range(1..=1000), hide_env_values = true)]
    pub http_client_breaker_probes: u32,
}

impl Default for ClientSettings {
    /// The documented defaults, whatever the environment says.
    fn default() -> Self {
        Self {
            http_client_connect_timeout_ms: defaults::CONNECT_TIMEOUT_MS,
            http_client_attempt_timeout_ms: defaults::ATTEMPT_TIMEOUT_MS,
            http_client_deadline_ms: defaults::DEADLINE_MS,
            http_client_max_attempts: defaults::MAX_ATTEMPTS,
            http_client_backoff_base_ms: defaults::BACKOFF_BASE_MS,
            http_client_backoff_max_ms: defaults::BACKOFF_MAX_MS,
            http_client_retry_after_max_ms: defaults::RETRY_AFTER_MAX_MS,
            http_client_retry_budget_ratio: defaults::RETRY_BUDGET_RATIO,
            http_client_retry_budget_min_per_second: defaults::RETRY_BUDGET_MIN_PER_SECOND,
            http_client_breaker_window: defaults::BREAKER_WINDOW,
            http_client_breaker_minimum_calls: defaults::BREAKER_MINIMUM_CALLS,
            http_client_breaker_failure_rate: defaults::BREAKER_FAILURE_RATE,
            http_client_breaker_slow_call_rate: defaults::BREAKER_SLOW_CALL_RATE,
            http_client_breaker_slow_call_ms: defaults::BREAKER_SLOW_CALL_MS,
            http_client_breaker_consecutive_failures: defaults::BREAKER_CONSECUTIVE_FAILURES,
            http_client_breaker_open_ms: defaults::BREAKER_OPEN_MS,
            http_client_breaker_open_max_ms: defaults::BREAKER_OPEN_MAX_MS,
            http_client_breaker_probes: defaults::BREAKER_PROBES,
        }
    }
}

impl ClientSettings {
    /// The breaker these settings describe; also for dependencies that are not HTTP
    /// peers (a card provider's SDK), so every dependency trips the same way.
    pub fn breaker(&self) -> BreakerConfig {
        let ms = Duration::from_millis;
        BreakerConfig {
            window: self.http_client_breaker_window.max(1),
            minimum_calls: self.http_client_breaker_minimum_calls,
            failure_rate: self.http_client_breaker_failure_rate,
            slow_call_rate: self.http_client_breaker_slow_call_rate,
            slow_call: ms(self.http_client_breaker_slow_call_ms),
            consecutive_failures: self.http_client_breaker_consecutive_failures.max(1),
            open_wait: ms(self.http_client_breaker_open_ms),
            open_wait_max: ms(self.http_client_breaker_open_max_ms),
            probes: self.http_client_breaker_probes.max(1),
        }
    }
}

/// The default of every setting, in one place for clap and for [`Default`].
pub mod defaults {
    pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
    pub const ATTEMPT_TIMEOUT_MS: u64 = 2_000;
    pub const DEADLINE_MS: u64 = 5_000;
    pub const MAX_ATTEMPTS: u32 = 3;
    pub const BACKOFF_BASE_MS: u64 = 50;
    pub const BACKOFF_MAX_MS: u64 = 1_000;
    pub const RETRY_AFTER_MAX_MS: u64 = 5_000;
    pub const RETRY_BUDGET_RATIO: f32 = 0.2;
    pub const RETRY_BUDGET_MIN_PER_SECOND: u32 = 5;
    pub const BREAKER_WINDOW: u32 = 20;
    pub const BREAKER_MINIMUM_CALLS: u32 = 10;
    pub const BREAKER_FAILURE_RATE: f32 = 0.5;
    pub const BREAKER_SLOW_CALL_RATE: f32 = 0.8;
    pub const BREAKER_SLOW_CALL_MS: u64 = 1_000;
    pub const BREAKER_CONSECUTIVE_FAILURES: u32 = 5;
    pub const BREAKER_OPEN_MS: u64 = 5_000;
    pub const BREAKER_OPEN_MAX_MS: u64 = 60_000;
    pub const BREAKER_PROBES: u32 = 3;
}

/// Everything the client needs to call one peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's name in logs and metrics, e.g. `user`.
    pub name: &'static str,
    /// e.g. `http://user:8001`, without a trailing slash.
    pub base_url: String,
    /// The peer's service key.
    pub key: Secret,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub deadline: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub retry_after_max: Duration,
    pub retry_budget_ratio: f32,
    pub retry_budget_min_per_second: u32,
    pub breaker: BreakerConfig,
}

impl PeerConfig {
    /// A peer with the given defaults.
    pub fn new(
        name: &'static str,
        base_url: impl Into<String>,
        key: Secret,
        settings: &ClientSettings,
    ) -> Self {
        let ms = Duration::from_millis;
        Self {
            name,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            key,
            connect_timeout: ms(settings.http_client_connect_timeout_ms),
            attempt_timeout: ms(settings.http_client_attempt_timeout_ms),
            deadline: ms(settings.http_client_deadline_ms),
            max_attempts: settings.http_client_max_attempts.max(1),
            backoff_base: ms(settings.http_client_backoff_base_ms),
            backoff_max: ms(settings.http_client_backoff_max_ms),
            retry_after_max: ms(settings.http_client_retry_after_max_ms),
            retry_budget_ratio: settings.http_client_retry_budget_ratio.clamp(0.0, 1000.0),
            retry_budget_min_per_second: settings.http_client_retry_budget_min_per_second,
            breaker: settings.breaker(),
        }
    }
}
