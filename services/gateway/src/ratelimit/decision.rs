//! A limiter's decision and the rate-limit headers that report it (the IETF draft's
//! `RateLimit-Policy` and `RateLimit`, and the legacy `X-RateLimit-*`).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A decision, with what the rate-limit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the oldest counted request leaves the window (a slot frees).
    pub resets_in: Duration,
}

/// The values of `RateLimit-Policy` and `X-RateLimit-Limit` for one limit: the same
/// on every response, so made once and cloned (a clone shares the bytes).
pub struct FixedHeaders {
    policy: HeaderValue,
    limit: HeaderValue,
}

impl FixedHeaders {
    /// For `limit` requests a `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            policy: structured(b"q=", limit.into(), b";w=", window.as_secs()),
            limit: limit.into(),
        }
    }
}

/// `"default";<first><a><second><b>`, written without the formatting machinery.
fn structured(first: &[u8], a: u64, second: &[u8], b: u64) -> HeaderValue {
    let mut numbers = (itoa::Buffer::new(), itoa::Buffer::new());
    let value = [
        &b"\"default\";"[..],
        first,
        numbers.0.format(a).as_bytes(),
        second,
        numbers.1.format(b).as_bytes(),
    ]
    .concat();
    // Digits and ASCII punctuation: always a valid value.
    HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static(""))
}

impl Decision {
    /// `RateLimit-Policy`, `RateLimit` and the legacy `X-RateLimit-*` headers, with the
    /// policy's own values from `fixed` (they go on every response).
    pub fn headers(&self, fixed: &FixedHeaders) -> [(HeaderName, HeaderValue); 5] {
        let reset = self.resets_in.as_secs() + u64::from(self.resets_in.subsec_nanos() > 0);
        [
            (RATELIMIT_POLICY, fixed.policy.clone()),
            (
                RATELIMIT,
                structured(b"r=", self.remaining.into(), b";t=", reset),
            ),
            (X_RATELIMIT_LIMIT, fixed.limit.clone()),
            (X_RATELIMIT_REMAINING, self.remaining.into()),
            (X_RATELIMIT_RESET, reset.into()),
        ]
    }

    /// Seconds a refused client should wait (`Retry-After`), at least 1.
    pub fn retry_after(&self) -> u64 {
        (self.resets_in.as_secs() + u64::from(self.resets_in.subsec_nanos() > 0)).max(1)
    }
}
