//! What every handler reaches, and the service's name.

use sqlx::PgPool;

use crate::targets::TargetPolicy;

/// This service's name: its consumer group.
pub const SERVICE: &str = "notification";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub policy: TargetPolicy,
}
