//! Exact sliding-window rate limits shared by every gateway replica.
//!
//! Each key (a user, or a client IP) is a list in Redis holding the time of every
//! request admitted in the last window, oldest first. One Lua script, run atomically,
//! pops what left the window, counts, and admits the request only if the count is
//! under the limit; it reads Redis's own clock, so replicas whose clocks disagree still
//! agree on the window. A list rather than a sorted set: admissions arrive in time
//! order, so pruning is popping from the front and admitting is pushing at the back,
//! each O(1) (a sorted set pays O(log n) and a unique member per request), and the
//! times pack into a few bytes each. No window-long span ever admits more than the limit, however many
//! requests race on however many replicas.
//!
//! When Redis cannot be reached the replica falls back to the same algorithm in its own
//! memory (logged, and counted in `gateway_rate_limit_fallback_total`): limits then
//! hold per replica instead of across them, rather than admitting everything or
//! failing every request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

/// The window every limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How long one Redis check may take before the local limiter decides instead.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// After Redis failed, how long requests go straight to the local limiter before Redis
/// is tried again, so an outage costs one slow request a second, not every request.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

const SCRIPT: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local oldest = tonumber(redis.call('LINDEX', key, 0))
while oldest and oldest <= now - window do
  redis.call('LPOP', key)
  oldest = tonumber(redis.call('LINDEX', key, 0))
end
local count = redis.call('LLEN', key)
local allowed = 0
if count < limit then
  redis.call('RPUSH', key, now)
  redis.call('PEXPIRE', key, window)
  count = count + 1
  allowed = 1
  if not oldest then oldest = now end
end
local frees_in = 0
if oldest then frees_in = oldest + window - now end
return {allowed, limit - count, frees_in}
";

/// A decision, with what the rate-limit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the oldest counted request leaves the window (a slot frees).
    pub resets_in: Duration,
}

/// The limiter.
pub struct RateLimiter {
    /// Opens the limiter's Redis connection.
    client: redis::Client,
    /// The connection, opened on first use by the runtime that uses it. Each HTTP
    /// worker has a limiter of its own ([`RateLimiter::for_worker`]), so the
    /// connection's task runs on the worker's thread and a check wakes no other thread.
    redis: tokio::sync::OnceCell<ConnectionManager>,
    script: Arc<Script>,
    prefix: String,
    limit: u32,
    local: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
    /// While set and in the future, Redis is skipped.
    redis_down_until: Arc<Mutex<Option<Instant>>>,
}

impl RateLimiter {
    pub fn new(client: redis::Client, prefix: &str, limit: u32) -> Self {
        Self {
            client,
            redis: tokio::sync::OnceCell::new(),
            script: Arc::new(Script::new(SCRIPT)),
            prefix: prefix.to_owned(),
            limit,
            local: Arc::default(),
            redis_down_until: Arc::default(),
        }
    }

    /// A limiter for one HTTP worker: the same limit and fallback memory, its own Redis
    /// connection.
    pub fn for_worker(&self) -> Self {
        Self {
            client: self.client.clone(),
            redis: tokio::sync::OnceCell::new(),
            script: self.script.clone(),
            prefix: self.prefix.clone(),
            limit: self.limit,
            local: self.local.clone(),
            redis_down_until: self.redis_down_until.clone(),
        }
    }

    /// Whether limits apply at all (a limit of 0 turns them off).
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Counts one request against `key` (e.g. `user:<id>`, `ip:<addr>`).
    pub async fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let skip_redis = self
            .redis_down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|until| now < until);
        if skip_redis {
            return self.check_locally(key, now);
        }
        let invocation = async {
            let redis = self
                .redis
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?;
            let mut invocation = self.script.key(format!("{}{key}", self.prefix));
            invocation.arg(self.limit).arg(WINDOW.as_millis() as u64);
            invocation
                .invoke_async::<(i64, i64, i64)>(&mut redis.clone())
                .await
        };
        let result = match tokio::time::timeout(REDIS_TIMEOUT, invocation).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
        };
        match result {
            Ok((allowed, remaining, frees_in_ms)) => {
                *self
                    .redis_down_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                Decision {
                    allowed: allowed == 1,
                    limit: self.limit,
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
                    resets_in: Duration::from_millis(
                        u64::try_from(frees_in_ms.max(0)).unwrap_or(0),
                    ),
                }
            }
            Err(error) => {
                tracing::warn!(
                    error,
                    "Redis unreachable: rate limiting in this replica's memory"
                );
                *self
                    .redis_down_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(now + REDIS_RETRY_AFTER);
                self.check_locally(key, now)
            }
        }
    }

    /// The same window kept in this replica's memory.
    fn check_locally(&self, key: &str, now: Instant) -> Decision {
        metrics::counter!("gateway_rate_limit_fallback_total").increment(1);
        let mut local = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if local.len() > 100_000 {
            local.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        let times = local.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        let allowed = times.len() < self.limit as usize;
        if allowed {
            times.push_back(now);
        }
        let resets_in = times.front().map_or(Duration::ZERO, |t| {
            WINDOW.saturating_sub(now.duration_since(*t))
        });
        Decision {
            allowed,
            limit: self.limit,
            remaining: self
                .limit
                .saturating_sub(u32::try_from(times.len()).unwrap_or(u32::MAX)),
            resets_in,
        }
    }
}

impl Decision {
    /// `RateLimit-Policy`, `RateLimit` and the legacy `X-RateLimit-*` headers.
    pub fn headers(&self) -> [(&'static str, String); 5] {
        let window = WINDOW.as_secs();
        let reset = self.resets_in.as_secs() + u64::from(self.resets_in.subsec_nanos() > 0);
        [
            (
                "ratelimit-policy",
                format!("\"default\";q={};w={window}", self.limit),
            ),
            (
                "ratelimit",
                format!("\"default\";r={};t={reset}", self.remaining),
            ),
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ]
    }

    /// Seconds a refused client should wait (`Retry-After`), at least 1.
    pub fn retry_after(&self) -> u64 {
        (self.resets_in.as_secs() + u64::from(self.resets_in.subsec_nanos() > 0)).max(1)
    }
}
