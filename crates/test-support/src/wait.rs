//! Waiting for something that happens in the background (an event consumed, a row
//! published) without sleeping a fixed time.

use std::time::Duration;

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it
/// held. Tests assert on the result, so a timeout fails the test with its own message.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition().await
}
