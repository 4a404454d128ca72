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

use axum::Router;
use axum::middleware::from_fn_with_state;
use contracts::events::streams;
use event_bus::{Consumer, ConsumerConfig, Publisher, Relay, RelayConfig};
use service_kit::internal_auth::{ServiceKey, require_service_key};
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

/// The full name of stream `name` under `prefix`.
pub fn stream(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
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

        let key = ServiceKey::new(&config.inventory_service_key);
        let api = routes::router()
            .route_layer(from_fn_with_state(key, require_service_key))
            .with_state(AppState { pool: pool.clone() });
        let readiness = Readiness::new()
            .with_postgres(pool.clone())
            .with_redis(redis.clone());
        let router = service_kit::middleware::apply(
            Router::new()
                .merge(api)
                .merge(service_kit::ops::router(readiness)),
            config.service.http.request_timeout(),
        );
        let listener = Service::bind(config.service.http.listen_addr(DEFAULT_PORT)).await?;
        let service = Service::new(listener, router, config.service.http.shutdown_timeout());

        let relay = Relay::new(
            pool.clone(),
            Publisher::new(redis.clone(), config.event_stream_max_len),
            RelayConfig::default(),
        );
        service.spawn_task("outbox relay", |cancel| relay.run(cancel));
        let prefix = config.event_stream_prefix.clone();
        let order_stream = stream(&prefix, streams::ORDER);
        let payment_stream = stream(&prefix, streams::PAYMENT);
        let mut consumer_config = ConsumerConfig::new(SERVICE, &[&order_stream, &payment_stream]);
        consumer_config.event_types = Some(saga::HANDLED.iter().map(|t| (*t).to_owned()).collect());
        consumer_config.order_key = Some(saga::order_key);
        let handler_pool = pool.clone();
        let outgoing = stream(&prefix, streams::INVENTORY);
        let client = redis::Client::open(config.service.redis.redis_url.0.as_str())?;
        let consumer = Consumer::new(client, consumer_config, move |event| {
            saga::handle(handler_pool.clone(), outgoing.clone(), event)
        });
        service.spawn_task("event consumer", |cancel| consumer.run(cancel));
        Ok(service)
    }
}
