//! What every handler reaches, and the service's name.

use std::sync::Arc;

use sqlx::PgPool;

use crate::passwords::Passwords;
use crate::tokens;

/// This service's name: the `source` of its events.
pub const SERVICE: &str = "user";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The stream this service publishes on (`events:user`, with the configured prefix).
    pub user_events: event_bus::Stream,
    pub passwords: Passwords,
    pub tokens: Arc<tokens::TokenSettings>,
    /// Commits what wrote to the outbox, waking the relay.
    pub wake: event_bus::Wake,
}
