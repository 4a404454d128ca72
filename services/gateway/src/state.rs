//! What the gateway's handlers reach: the parts every worker shares, and each worker's
//! own.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::Verifier;
use crate::connections;
use crate::console::Console;
use crate::dashboard::Backends;
use crate::ratelimit::RateLimiter;
use crate::routes::Resolved;

/// What the handler can reach, behind one `Arc`: axum clones the state for every
/// request, and one reference count is cheaper than one per field.
pub type AppState = Arc<Worker>;

/// One HTTP worker's state: the gateway's shared parts and the worker's own upstream
/// and Redis connections. An upstream connection is used by the request on it, and
/// the Redis connection is driven by a task on the worker's runtime, so with
/// connections per worker a request never leaves its thread.
pub struct Worker {
    pub gateway: Arc<Gateway>,
    /// The shared key set with this worker's own memory of verified tokens.
    pub verifier: Verifier,
    pub connections: connections::Connections,
    /// The shared limit with this worker's own Redis connection.
    pub limiter: RateLimiter,
    /// The gateway's own endpoints ([`crate::endpoints::router`]).
    pub endpoints: axum::Router,
}

/// The gateway's parts every worker shares.
pub struct Gateway {
    /// The route table ([`crate::routes::TABLE`]) with each line's service.
    pub routes: Vec<Resolved>,
    pub verifier: Verifier,
    pub limiter: RateLimiter,
    pub trusted_proxies: Vec<IpAddr>,
    pub backends: Backends,
    /// The ops console's clients.
    pub console: Arc<Console>,
    /// How long the proxy waits for a service, and how many connections it opens.
    pub limits: connections::Limits,
}
