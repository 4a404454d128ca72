//! What every handler reaches, and the service's name.

use sqlx::PgPool;

/// This service's name: its consumer group and the `source` of its events.
pub const SERVICE: &str = "payment";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}
