//! Per-peer client metrics. Handles are registered once per client so the hot path
//! only bumps atomics: label sets are not rebuilt on every call.

use metrics::{Counter, Gauge, Histogram};

use crate::breaker::BreakerState;

/// The outcomes a call is counted under.
#[derive(Debug, Clone, Copy)]
pub enum CallOutcome {
    Success,
    Status,
    Timeout,
    Transport,
    CircuitOpen,
    BudgetExhausted,
    Other,
}

#[derive(Clone)]
pub struct PeerMetrics {
    success: Counter,
    status: Counter,
    timeout: Counter,
    transport: Counter,
    circuit_open: Counter,
    budget_exhausted: Counter,
    other: Counter,
    pub attempts: Counter,
    pub retries: Counter,
    pub duration: Histogram,
    breaker_state: Gauge,
    peer: &'static str,
}

impl PeerMetrics {
    pub fn new(peer: &'static str) -> Self {
        let requests = |outcome: &'static str| metrics::counter!("http_client_requests_total", "peer" => peer, "outcome" => outcome);
        let this = Self {
            success: requests("success"),
            status: requests("status"),
            timeout: requests("timeout"),
            transport: requests("transport"),
            circuit_open: requests("circuit_open"),
            budget_exhausted: requests("budget_exhausted"),
            other: requests("other"),
            attempts: metrics::counter!("http_client_attempts_total", "peer" => peer),
            retries: metrics::counter!("http_client_retries_total", "peer" => peer),
            duration: metrics::histogram!("http_client_request_duration_seconds", "peer" => peer),
            breaker_state: metrics::gauge!("http_client_breaker_state", "peer" => peer),
            peer,
        };
        this.breaker_state.set(BreakerState::Closed.as_gauge());
        this
    }

    pub fn call(&self, outcome: CallOutcome) {
        match outcome {
            CallOutcome::Success => &self.success,
            CallOutcome::Status => &self.status,
            CallOutcome::Timeout => &self.timeout,
            CallOutcome::Transport => &self.transport,
            CallOutcome::CircuitOpen => &self.circuit_open,
            CallOutcome::BudgetExhausted => &self.budget_exhausted,
            CallOutcome::Other => &self.other,
        }
        .increment(1);
    }

    /// Logs and exports a breaker transition.
    pub fn transition(&self, from: BreakerState, to: BreakerState) {
        self.breaker_state.set(to.as_gauge());
        metrics::counter!(
            "http_client_breaker_transitions_total",
            "peer" => self.peer,
            "to" => to.as_str()
        )
        .increment(1);
        if to == BreakerState::Open {
            tracing::warn!(
                peer = self.peer,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                peer = self.peer,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            );
        }
    }
}
