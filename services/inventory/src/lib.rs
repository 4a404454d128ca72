//! The inventory service: products, their stock, and the reservations that hold stock
//! for orders while they are paid.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, the outbox relay, the event consumer and
//!   the routes into a [`service_kit::server::Service`].
//! - [`routes`]: one module per endpoint; the gateway maps `/api/products/*` onto them.
//! - [`products`]: the product model, its validation and storage.
//! - [`reservations`]: holding, committing and releasing stock for an order, all lines
//!   or none, without ever overselling.
//! - [`saga`]: what the service does on `order.created`, `payment.succeeded`,
//!   `payment.declined` and `order.cancelled`.

pub mod config;
pub mod products;
pub mod reservations;
pub mod routes;
pub mod saga;

use contracts::events::streams;
use event_bus::{Consumer, ConsumerConfig, Relay, RelayConfig};
use service_kit::ops::Readiness;
use service_kit::server::Service;
use sqlx::PgPool;

use crate::config::Config;

/// The inventory database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

/// The port the inventory service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8005;

/// This service's name: its consumer group and the `source` of its events.
pub const SERVICE: &str = "inventory";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

/// Builds the inventory service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the outbox
    /// relay and the event consumer beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Service> {
        let pool =
            service_kit::database::connect_and_migrate(&config.service.database, &MIGRATOR).await?;
        event_bus::schema::install(&pool).await?;
        let redis = service_kit::redis::connect(&config.service.redis).await?;
        service_kit::metrics::handle();

        let readiness = Readiness::new()
            .with_postgres(pool.clone())
            .with_redis(redis.clone());
        let service = Service::build(
            &config.service.http,
            DEFAULT_PORT,
            routes::router().with_state(AppState { pool: pool.clone() }),
            &config.inventory_service_key,
            readiness,
        )
        .await?;

        let relay = Relay::new(
            pool.clone(),
            config.events.publisher(redis),
            RelayConfig::default(),
        );
        service.spawn_task("outbox relay", |cancel| relay.run(cancel));
        let order_stream = config.events.stream(streams::ORDER);
        let payment_stream = config.events.stream(streams::PAYMENT);
        let mut consumer_config = ConsumerConfig::new(SERVICE, &[&order_stream, &payment_stream]);
        consumer_config.event_types = Some(saga::HANDLED.iter().map(|t| (*t).to_owned()).collect());
        consumer_config.order_key = Some(saga::order_key);
        let handler_pool = pool.clone();
        let outgoing = config.events.stream(streams::INVENTORY);
        let client = redis::Client::open(config.service.redis.redis_url.0.as_str())?;
        let consumer = Consumer::new(client, consumer_config, move |event| {
            saga::handle(handler_pool.clone(), outgoing.clone(), event)
        });
        service.spawn_task("event consumer", |cancel| consumer.run(cancel));
        Ok(service)
    }
}
