//! Deadline propagation: a caller tells the callee how much time it has left, and the
//! callee stops working once that has passed, since nobody is waiting for the answer.
//!
//! The budget travels as a relative number of milliseconds (`X-Deadline-Ms`, like
//! gRPC's `grpc-timeout`), not an absolute time, so the two machines' clocks need not
//! agree. The server stack ([`crate::middleware`]) turns it into an instant, keeps it in a task-local for the
//! outgoing client (which sends what remains of it on every onward call), and answers
//! 504 once it passes.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::problem::Problem;

/// Milliseconds the caller is still willing to wait.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-deadline-ms");

/// Longest budget a caller may grant: a malformed huge value must not disable timeouts.
const MAX_BUDGET: Duration = Duration::from_secs(3600);

tokio::task_local! {
    static CURRENT: Option<Instant>;
}

/// When the caller of the request being served gives up, if it said.
pub fn current() -> Option<Instant> {
    CURRENT.try_with(|d| *d).ok().flatten()
}

/// Time left before the served request's deadline, if it has one.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `future` under `deadline` (for tests and for work spawned off a request).
pub fn scope<F: Future>(deadline: Instant, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(Some(deadline), future)
}

/// Runs the request being served under its caller's deadline, or none.
///
/// Like every scope here, a plain function returning tokio's scoped future rather than
/// an `async fn`: an `async fn` keeps its argument and the future it awaits side by
/// side, doubling the size of everything it wraps, and the server stack nests several.
pub(crate) fn serve<F: Future>(
    deadline: Option<Instant>,
    future: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(deadline, future)
}

/// The budget the caller granted `request`, capped; `None` when it sent none (or
/// something unreadable).
pub fn budget(request: &Request) -> Option<Duration> {
    request
        .headers()
        .get(&DEADLINE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).min(MAX_BUDGET))
}

/// The 504 for a request whose caller's deadline passed.
pub fn expired() -> Response {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "The caller's deadline passed before the request completed.",
    )
    .into_response()
}
