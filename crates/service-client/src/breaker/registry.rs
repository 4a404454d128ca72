//! Every breaker this process holds, by peer, for the ops report.
//!
//! A breaker is per process by design (as in Envoy), so the list is too: each
//! [`crate::Client`] enters its breaker here when it is made, held weakly so a dropped
//! client leaves nothing behind. Reading it takes each breaker's lock once.

use std::sync::{Mutex, Weak};

use serde::{Deserialize, Serialize};

use super::{BreakerState, CircuitBreaker, Inner, Snapshot};

static BREAKERS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

struct Entry {
    peer: &'static str,
    inner: Weak<Mutex<Inner>>,
}

/// One peer's breaker as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBreaker {
    pub peer: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    pub calls: u32,
    pub failure_rate: f32,
    pub slow_call_rate: f32,
    /// Milliseconds until the next probe may pass; `None` while closed.
    pub next_probe_in_ms: Option<u64>,
}

/// Enters `breaker`, which guards calls to `peer`.
pub(crate) fn register(peer: &'static str, breaker: &CircuitBreaker) {
    let mut breakers = BREAKERS.lock().unwrap_or_else(|p| p.into_inner());
    breakers.retain(|entry| entry.inner.strong_count() > 0);
    breakers.push(Entry {
        peer,
        inner: std::sync::Arc::downgrade(&breaker.inner),
    });
}

/// Every live breaker, one per peer, sorted by peer. Where several clients call the
/// same peer (each with its own breaker), the one furthest from closed is shown.
pub fn breakers() -> Vec<PeerBreaker> {
    let entries: Vec<(&'static str, std::sync::Arc<Mutex<Inner>>)> = {
        let breakers = BREAKERS.lock().unwrap_or_else(|p| p.into_inner());
        breakers
            .iter()
            .filter_map(|entry| Some((entry.peer, entry.inner.upgrade()?)))
            .collect()
    };
    let mut shown: Vec<(&'static str, Snapshot)> = Vec::new();
    for (peer, inner) in entries {
        let snapshot = Snapshot::of(&inner.lock().unwrap_or_else(|p| p.into_inner()));
        match shown.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, kept)) if severity(snapshot.state) > severity(kept.state) => *kept = snapshot,
            Some(_) => {}
            None => shown.push((peer, snapshot)),
        }
    }
    shown.sort_by_key(|(peer, _)| *peer);
    shown
        .into_iter()
        .map(|(peer, s)| PeerBreaker {
            peer: peer.to_owned(),
            state: s.state.as_str().to_owned(),
            calls: s.calls,
            failure_rate: s.failure_rate,
            slow_call_rate: s.slow_call_rate,
            next_probe_in_ms: s
                .next_probe_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect()
}

fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}
