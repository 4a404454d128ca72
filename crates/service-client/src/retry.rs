//! What may be retried, and how long to wait first.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header};
use rand::Rng;

/// Statuses that say "try again": the peer is overloaded, restarting or behind a proxy
/// that could not reach it. Any other 4xx is the request's fault and will not change.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Capped exponential backoff with full jitter (AWS's "Exponential Backoff And
/// Jitter"): a uniform wait in `[0, min(cap, base * 2^(retry - 1))]`. Full jitter spreads
/// the retries of many clients that failed together.
pub fn backoff(retry: u32, base: Duration, cap: Duration) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exponent).min(cap);
    if ceiling.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The peer's `Retry-After`, as seconds or an HTTP date, if present and sane.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_exponential_ceiling_and_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(500);
        for _ in 0..1000 {
            assert!(backoff(1, base, cap) <= Duration::from_millis(100));
            assert!(backoff(2, base, cap) <= Duration::from_millis(200));
            assert!(backoff(10, base, cap) <= cap);
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let samples: std::collections::HashSet<Duration> = (0..50)
            .map(|_| backoff(3, Duration::from_millis(100), Duration::from_secs(1)))
            .collect();
        assert!(samples.len() > 40);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(
            header::RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );

        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_overload_and_gateway_statuses_are_retryable() {
        for code in [429, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(code).unwrap()));
        }
        for code in [400, 401, 403, 404, 409, 422, 500, 501] {
            assert!(!is_retryable_status(StatusCode::from_u16(code).unwrap()));
        }
    }
}
