//! Waiting for a dependency at start-up.
//!
//! Under docker compose or Kubernetes a service often starts before its database or
//! Redis accepts connections. Crashing then turns a few seconds of start-up order into a
//! restart loop, so the first connection is retried with capped exponential backoff until
//! a deadline, and only then reported as one clear error.

use std::time::Duration;

use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Calls `attempt` until it succeeds or `timeout` has passed; returns the last error.
pub async fn wait_for<T, E, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_DELAY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt().await {
            Ok(value) => {
                if attempts > 1 {
                    tracing::info!(dependency = what, attempts, "connected");
                }
                return Ok(value);
            }
            Err(error) if Instant::now() + delay < deadline => {
                tracing::warn!(
                    dependency = what,
                    attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %error,
                    "not reachable yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn it_retries_until_the_dependency_answers() {
        let calls = AtomicU32::new(0);
        let result = wait_for("thing", Duration::from_secs(10), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 3 { Err("down") } else { Ok(n) } }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_with_the_last_error_at_the_deadline() {
        let started = Instant::now();
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = wait_for("thing", Duration::from_secs(5), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Err(format!("down {n}")) }
        })
        .await;
        let last = calls.load(Ordering::SeqCst) - 1;
        assert_eq!(result, Err(format!("down {last}")));
        assert!(started.elapsed() <= Duration::from_secs(5));
        assert!(last >= 4, "only {last} retries");
    }
}
