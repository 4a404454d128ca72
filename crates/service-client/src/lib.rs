//! The resilient HTTP client every Switchyard service calls its peers with.
//!
//! One [`Client`] per peer holds that peer's settings, one circuit breaker and one retry
//! budget, shared by every clone. A call is built like a `reqwest` request and sent with
//! [`Call::send`], which:
//!
//! 1. fails at once, touching no network, while the peer's breaker is open;
//! 2. sends the request with the peer's key, this service's name, and the request id,
//!    W3C `traceparent` and remaining deadline of the request being served (read from
//!    `service_kit`'s task-locals: the handler passes nothing);
//! 3. bounds each attempt by the per-attempt timeout and all of them by the deadline;
//! 4. retries only what is safe to repeat (idempotent methods, or a request with an
//!    `Idempotency-Key`) and only on what may pass (connect errors, timeouts, 429, 502,
//!    503, 504), after capped exponential backoff with full jitter or the peer's
//!    `Retry-After`, and only while the peer's retry budget allows;
//! 5. answers with a typed [`Error`] that says what happened, whose fault it was and
//!    whether it was retried.
//!
//! [`concurrent`] runs named calls together, each with its own timeout.
//!
//! # Layout
//!
//! - [`config`]: per-peer settings and their environment defaults.
//! - [`client`]: [`Client`], [`Call`], [`Response`] and the send loop.
//! - [`retry`]: what may be retried, backoff and `Retry-After`.
//! - [`breaker`]: the circuit breaker.
//! - [`error`]: [`Error`], [`ErrorKind`], [`Fault`].
//! - [`concurrent`](mod@concurrent): named calls in flight together.

pub mod breaker;
pub mod client;
pub mod concurrent;
pub mod config;
pub mod error;
mod metrics;
pub mod retry;

pub use breaker::registry::{PeerBreaker, breakers};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use client::{Call, Client, Response};
pub use concurrent::{Concurrent, concurrent};
pub use config::{ClientSettings, PeerConfig};
pub use error::{Error, ErrorKind, Fault, Invalid};
