//! A circuit breaker per peer, shared by every clone of its client.
//!
//! - **Closed**: calls pass; each outcome enters a sliding window of the last `window`
//!   calls. Once the window holds `minimum_calls`, a failure rate or slow-call rate at or
//!   over its threshold opens the breaker; so do `consecutive_failures` failures in a
//!   row, which trips a quiet peer that never fills the window.
//! - **Open**: calls fail at once without touching the network, for the open wait.
//! - **Half-open**: after the wait, exactly `probes` calls are let through, however many
//!   race for them. All succeeding closes the breaker; any failing reopens it with twice
//!   the previous wait, up to `open_wait_max`.
//!
//! Time is `tokio::time::Instant`, so tests drive it with a paused clock. The state sits
//! behind one uncontended mutex: a check costs tens of nanoseconds (see the crate's
//! benchmark), far below anything a network call costs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// When the breaker opens and how it recovers.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub window: u32,
    pub minimum_calls: u32,
    pub failure_rate: f32,
    pub slow_call_rate: f32,
    pub slow_call: Duration,
    pub consecutive_failures: u32,
    pub open_wait: Duration,
    pub open_wait_max: Duration,
    pub probes: u32,
}

/// The breaker's state, as exported in metrics (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

/// A breaker's state and the figures behind it, as [`CircuitBreaker::snapshot`] reads
/// them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub state: BreakerState,
    /// Calls in the sliding window (cleared when the breaker closes).
    pub calls: u32,
    pub failure_rate: f32,
    pub slow_call_rate: f32,
    /// Until the next probe may pass: `None` while closed, zero when one may go now.
    pub next_probe_in: Option<Duration>,
}

impl Snapshot {
    fn of(inner: &Inner) -> Self {
        let calls = inner.window.len() as u32;
        let rate = |count: u32| {
            if calls == 0 {
                0.0
            } else {
                count as f32 / calls as f32
            }
        };
        let now = Instant::now();
        let (state, next_probe_in) = match inner.state {
            State::Closed => (BreakerState::Closed, None),
            State::Open { until } if now < until => (BreakerState::Open, Some(until - now)),
            State::Open { .. } | State::HalfOpen { .. } => {
                (BreakerState::HalfOpen, Some(Duration::ZERO))
            }
        };
        Snapshot {
            state,
            calls,
            failure_rate: rate(inner.failures_in_window),
            slow_call_rate: rate(inner.slow_in_window),
            next_probe_in,
        }
    }
}

/// How a call went, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy)]
struct Recorded {
    failed: bool,
    slow: bool,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { granted: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition, so a permit from an earlier state is not counted.
    generation: u64,
    window: VecDeque<Recorded>,
    failures_in_window: u32,
    slow_in_window: u32,
    consecutive_failures: u32,
    /// The wait the next opening uses.
    next_wait: Duration,
}

/// What a transition reports to metrics and logs.
pub type TransitionHook = Arc<dyn Fn(BreakerState, BreakerState) + Send + Sync>;

/// A shared circuit breaker.
#[derive(Clone)]
pub struct CircuitBreaker {
    config: Arc<BreakerConfig>,
    inner: Arc<Mutex<Inner>>,
    on_transition: Option<TransitionHook>,
}

/// Leave to make one call; give it back with [`CircuitBreaker::record`].
#[derive(Debug)]
#[must_use = "a permit must be recorded, or a half-open probe slot is lost until dropped"]
pub struct Permit {
    generation: u64,
    probe: bool,
    recorded: bool,
    breaker: Option<CircuitBreaker>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .finish()
    }
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: State::Closed,
                generation: 0,
                window: VecDeque::with_capacity(config.window as usize),
                failures_in_window: 0,
                slow_in_window: 0,
                consecutive_failures: 0,
                next_wait: config.open_wait,
            })),
            config: Arc::new(config),
            on_transition: None,
        }
    }

    /// Calls `hook(from, to)` on every state change.
    pub fn with_transition_hook(mut self, hook: TransitionHook) -> Self {
        self.on_transition = Some(hook);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves consistent counters; keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state (an open breaker whose wait is over reads as half-open).
    pub fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// What the breaker looks like now, for an operator.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.lock())
    }

    /// Asks to make a call.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let mut inner = self.lock();
        let mut transition = None;
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } => {
                if Instant::now() < until {
                    return Err(Rejected);
                }
                inner.state = State::HalfOpen {
                    granted: 1,
                    succeeded: 0,
                };
                inner.generation += 1;
                transition = Some((BreakerState::Open, BreakerState::HalfOpen));
                true
            }
            State::HalfOpen {
                ref mut granted, ..
            } => {
                if *granted >= self.config.probes {
                    return Err(Rejected);
                }
                *granted += 1;
                true
            }
        };
        let permit = Permit {
            generation: inner.generation,
            probe,
            recorded: false,
            breaker: probe.then(|| self.clone()),
        };
        drop(inner);
        if let Some((from, to)) = transition {
            self.report(from, to);
        }
        Ok(permit)
    }

    /// Records how the permitted call went.
    pub fn record(&self, mut permit: Permit, outcome: Outcome, elapsed: Duration) {
        permit.recorded = true;
        let failed = outcome == Outcome::Failure;
        let slow = !failed && elapsed >= self.config.slow_call;
        let transition = {
            let mut inner = self.lock();
            if permit.generation != inner.generation {
                // Started under an earlier state: its outcome says nothing now.
                None
            } else {
                match inner.state {
                    State::Closed => self.record_closed(&mut inner, Recorded { failed, slow }),
                    State::HalfOpen {
                        ref mut succeeded, ..
                    } => {
                        if failed {
                            Some(self.open(&mut inner, BreakerState::HalfOpen))
                        } else {
                            *succeeded += 1;
                            (*succeeded >= self.config.probes).then(|| self.close(&mut inner))
                        }
                    }
                    State::Open { .. } => None,
                }
            }
        };
        if let Some((from, to)) = transition {
            self.report(from, to);
        }
    }

    /// A permit dropped unrecorded (its call was cancelled): a probe slot is handed
    /// back so the half-open state cannot starve.
    fn release(&self, permit: &Permit) {
        let mut inner = self.lock();
        if permit.generation == inner.generation
            && let State::HalfOpen {
                ref mut granted, ..
            } = inner.state
        {
            *granted = granted.saturating_sub(1);
        }
    }

    fn record_closed(
        &self,
        inner: &mut Inner,
        outcome: Recorded,
    ) -> Option<(BreakerState, BreakerState)> {
        if inner.window.len() >= self.config.window as usize
            && let Some(oldest) = inner.window.pop_front()
        {
            inner.failures_in_window -= u32::from(oldest.failed);
            inner.slow_in_window -= u32::from(oldest.slow);
        }
        inner.window.push_back(outcome);
        inner.failures_in_window += u32::from(outcome.failed);
        inner.slow_in_window += u32::from(outcome.slow);
        inner.consecutive_failures = if outcome.failed {
            inner.consecutive_failures + 1
        } else {
            0
        };

        let calls = inner.window.len() as f32;
        let rates_apply = inner.window.len() as u32 >= self.config.minimum_calls.max(1);
        let failure_rate = inner.failures_in_window as f32 / calls;
        let slow_rate = inner.slow_in_window as f32 / calls;
        let trips = inner.consecutive_failures >= self.config.consecutive_failures
            || (rates_apply
                && (failure_rate >= self.config.failure_rate
                    || slow_rate >= self.config.slow_call_rate));
        trips.then(|| self.open(inner, BreakerState::Closed))
    }

    fn open(&self, inner: &mut Inner, from: BreakerState) -> (BreakerState, BreakerState) {
        let wait = if from == BreakerState::HalfOpen {
            (inner.next_wait * 2).min(self.config.open_wait_max)
        } else {
            self.config.open_wait
        };
        inner.next_wait = wait;
        inner.state = State::Open {
            until: Instant::now() + wait,
        };
        inner.generation += 1;
        (from, BreakerState::Open)
    }

    fn close(&self, inner: &mut Inner) -> (BreakerState, BreakerState) {
        inner.state = State::Closed;
        inner.generation += 1;
        inner.window.clear();
        inner.failures_in_window = 0;
        inner.slow_in_window = 0;
        inner.consecutive_failures = 0;
        inner.next_wait = self.config.open_wait;
        (BreakerState::HalfOpen, BreakerState::Closed)
    }

    fn report(&self, from: BreakerState, to: BreakerState) {
        if let Some(hook) = &self.on_transition {
            hook(from, to);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded
            && self.probe
            && let Some(breaker) = self.breaker.take()
        {
            breaker.release(self);
        }
    }
}

pub mod registry;
#[cfg(test)]
mod tests;
