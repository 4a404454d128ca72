//! What every handler reaches, and the service's name.

use contracts::inventory::InventoryClient;
use contracts::users::UserClient;
use sqlx::PgPool;

/// This service's name: its consumer group, its name to peers and the `source` of its
/// events.
pub const SERVICE: &str = "order";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub users: UserClient,
    pub inventory: InventoryClient,
    /// The stream this service's events go to.
    pub order_events: event_bus::Stream,
    /// Commits what wrote to the outbox, waking the relay.
    pub wake: event_bus::Wake,
}
