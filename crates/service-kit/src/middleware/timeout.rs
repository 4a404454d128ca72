//! How long a request may run: the server's own timeout or, when sooner, the deadline
//! its caller sent ([`crate::deadline`]). Past it the handler is dropped and the client
//! gets a 504 problem saying which limit passed, so a stuck dependency cannot pile up
//! requests and nobody works for a caller that has given up.
//!
//! One timer per request serves both limits: whichever is sooner is the one armed.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::{self, Either};
use tokio::time::Instant;

use crate::deadline;
use crate::problem::Problem;

/// The limit a request runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The server's request timeout, `budget` from the start.
    Server { at: Instant, budget: Duration },
    /// The caller's deadline, sooner than the server's timeout.
    Caller { at: Instant, budget: Duration },
}

impl Limit {
    /// The sooner of `server_timeout` and the caller's `budget`, from `now`.
    pub fn sooner(now: Instant, server_timeout: Duration, budget: Option<Duration>) -> Self {
        match budget {
            Some(budget) if budget < server_timeout => Self::Caller {
                at: now + budget,
                budget,
            },
            _ => Self::Server {
                at: now + server_timeout,
                budget: server_timeout,
            },
        }
    }

    /// When it passes.
    pub fn at(&self) -> Instant {
        match self {
            Self::Server { at, .. } | Self::Caller { at, .. } => *at,
        }
    }

    /// Whether it has passed before anything started (a caller's budget of 0).
    pub fn already_passed(&self) -> bool {
        match self {
            Self::Server { budget, .. } | Self::Caller { budget, .. } => budget.is_zero(),
        }
    }

    /// The 504 once it passed, logged.
    pub fn passed(&self) -> Response {
        match self {
            Self::Server { budget, .. } => {
                tracing::warn!(limit_ms = budget.as_millis() as u64, "request timed out");
                Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The request took too long and was abandoned.",
                )
                .into_response()
            }
            Self::Caller { budget, .. } => {
                tracing::info!(
                    budget_ms = budget.as_millis() as u64,
                    "caller's deadline passed; work abandoned"
                );
                deadline::expired()
            }
        }
    }

    /// Runs `work` until it answers or the limit passes; `work` is never polled when
    /// the limit had passed before it started.
    ///
    /// Built from plain futures, not an `async fn`, which would hold `work` twice over
    /// (see [`crate::deadline::serve`]).
    pub fn run<F: Future<Output = Response>>(self, work: F) -> impl Future<Output = Response> {
        if self.already_passed() {
            return Either::Left(future::lazy(move |_| self.passed()));
        }
        Either::Right(
            tokio::time::timeout_at(self.at(), work)
                .map(move |answered| answered.unwrap_or_else(|_| self.passed())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sooner_limit_is_the_one_armed() {
        let now = Instant::now();
        let server = Duration::from_secs(30);
        assert_eq!(
            Limit::sooner(now, server, None),
            Limit::Server {
                at: now + server,
                budget: server
            }
        );
        let short = Duration::from_millis(200);
        assert_eq!(
            Limit::sooner(now, server, Some(short)),
            Limit::Caller {
                at: now + short,
                budget: short
            }
        );
        assert!(matches!(
            Limit::sooner(now, server, Some(Duration::from_secs(60))),
            Limit::Server { .. }
        ));
        assert!(Limit::sooner(now, server, Some(Duration::ZERO)).already_passed());
    }
}
