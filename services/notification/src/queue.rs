//! What the email and webhook queues share: when to try again.

use std::time::Duration;

use tokio::sync::Notify;

/// Retry timing of a durable delivery queue.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the second attempt.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Attempts before giving up.
    pub max_attempts: i32,
    /// How often an idle worker looks for due work.
    pub poll: Duration,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1-based): `base · 2^(attempt-1)`,
    /// capped, with "equal jitter" (half fixed, half random) so retries of many
    /// deliveries spread out but never come sooner than half the nominal wait.
    pub fn after(&self, attempt: i32) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        let nominal = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = nominal / 2;
        let wait = half + half.mul_f64(rand::random::<f64>());
        // Whole milliseconds: PostgreSQL intervals hold microseconds at most.
        Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
    }

    /// Whether attempt number `attempt` was the last one allowed.
    pub fn exhausted(&self, attempt: i32) -> bool {
        attempt >= self.max_attempts
    }
}

/// Runs a queue worker until `cancel`: `step` claims and handles a batch of due work
/// and says how much it handled; when it handled nothing (or failed) the worker waits
/// `poll`, or until `wake` (work this process just committed), before looking again.
pub async fn run<F, Fut>(
    name: &'static str,
    poll: Duration,
    wake: &Notify,
    cancel: tokio_util::sync::CancellationToken,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    // A step is never abandoned halfway: a claim or record cut off mid-query could
    // leave its rows locked until the connection closes. Shutdown waits for it.
    while !cancel.is_cancelled() {
        let handled = step().await;
        let idle = match handled {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(
                    queue = name,
                    error = format!("{error:#}"),
                    "queue step failed"
                );
                true
            }
        };
        if idle {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// How long a claimed item is held before another worker may take it over (its worker
/// died mid-send): comfortably more than one send may take.
pub fn lease(send_timeout: Duration) -> Duration {
    send_timeout * 2 + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_their_jitter_and_stop_at_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1_000),
            max_attempts: 5,
            poll: Duration::from_millis(10),
        };
        for (attempt, nominal) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_000),
            (40, 1_000),
        ] {
            let wait = backoff.after(attempt);
            let nominal = Duration::from_millis(nominal);
            assert!(
                wait >= nominal / 2 && wait <= nominal,
                "{attempt}: {wait:?}"
            );
        }
        assert!(!backoff.exhausted(4));
        assert!(backoff.exhausted(5));
    }
}
