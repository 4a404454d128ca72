//! What every service with its own database and events stands on: the connections,
//! the readiness checks over them, the outbox relay and the saga consumer.

use service_kit::config::ServiceConfig;
use service_kit::ops::Readiness;
use service_kit::server::Server;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::config::EventsConfig;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox::Effect;
use crate::outbox::Wake;
use crate::relay::{Relay, RelayConfig};
use crate::stream::Stream;

/// A service's database and Redis, connected, with the event settings.
pub struct Foundation {
    pub pool: PgPool,
    pub redis: service_kit::redis::Connection,
    redis_client: service_kit::redis::Client,
    events: EventsConfig,
    wake: Wake,
}

/// How a service consumes: its group, the streams (names under the prefix) and event
/// types it reads, and the key that keeps one entity's events in order.
pub struct Subscription<'a> {
    pub group: &'a str,
    pub streams: &'a [&'a str],
    pub event_types: &'a [&'a str],
    pub order_key: Option<fn(&Envelope) -> Option<String>>,
}

impl Foundation {
    /// Connects to Postgres (migrating it with `migrator`, then installing the outbox
    /// and inbox tables) and to Redis, waiting for each as configured.
    pub async fn connect(
        service: &ServiceConfig,
        events: &EventsConfig,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        // The consumer's handlers hold one connection each (a consumer of effects one at
        // a time, fewer than that bound); the relay opens its own.
        let background = u32::from(events.event_consumer_concurrency);
        let pool =
            service_kit::database::connect_and_migrate(&service.database, background, migrator)
                .await?;
        crate::schema::install(&pool).await?;
        let redis = service.redis.connect().await?;
        let redis_client = service.redis.client()?;
        service_kit::metrics::handle();
        Ok(Self {
            pool,
            redis,
            redis_client,
            events: events.clone(),
            wake: Wake::new(),
        })
    }

    /// Ready when both Postgres and Redis answer.
    pub fn readiness(&self) -> Readiness {
        Readiness::new()
            .with_postgres(self.pool.clone())
            .with_redis(self.redis.clone())
    }

    /// What the ops API reads of this service's bus; `subscription` is what the
    /// service consumes, if anything.
    pub fn ops_sources(&self, subscription: Option<&Subscription<'_>>) -> crate::ops::Sources {
        crate::ops::Sources {
            pool: self.pool.clone(),
            redis: self.redis.clone(),
            subscription: subscription.map(|s| (s.group.to_owned(), self.partitions(s))),
        }
    }

    /// Every partition of the streams `subscription` reads.
    fn partitions(&self, subscription: &Subscription<'_>) -> Vec<String> {
        subscription
            .streams
            .iter()
            .flat_map(|s| self.stream(s).partitions())
            .collect()
    }

    /// Stream `name` under the prefix, in the configured partitions.
    pub fn stream(&self, name: &str) -> Stream {
        self.events.stream(name)
    }

    /// What hands committed events to this process's relay: commit transactions that
    /// enqueued events with [`Wake::commit`].
    pub fn wake(&self) -> Wake {
        self.wake.clone()
    }

    /// Runs the outbox relay beside `service`.
    pub fn start_relay(&self, service: &Server) {
        let relay = Relay::new(
            self.pool.clone(),
            self.events.publisher(self.redis.clone()),
            RelayConfig::default(),
            self.wake.clone(),
        );
        service.spawn_task("outbox relay", |cancel| relay.run(cancel));
    }

    /// Runs a consumer for `subscription` beside `service`, handing each event to
    /// `handler`, which applies it on its own (for handlers that do more than write to
    /// the database; see [`crate::inbox`]).
    pub fn start_consumer<F, Fut>(
        &self,
        service: &Server,
        subscription: Subscription<'_>,
        handler: F,
    ) where
        F: Fn(Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let config = self.consumer_config(&subscription);
        let consumer = Consumer::new(self.redis_client.clone(), config, handler);
        service.spawn_task("event consumer", |cancel| consumer.run(cancel));
    }

    /// Runs a consumer for `subscription` beside `service` that applies `effect` to each
    /// event exactly once, events ready together in one transaction.
    pub fn start_effects(
        &self,
        service: &Server,
        subscription: Subscription<'_>,
        effect: impl Effect,
    ) {
        let config = self.consumer_config(&subscription);
        let consumer = Consumer::with_effects(
            self.redis_client.clone(),
            config,
            self.pool.clone(),
            self.wake.clone(),
            effect,
        );
        service.spawn_task("event consumer", |cancel| consumer.run(cancel));
    }

    fn consumer_config(&self, subscription: &Subscription<'_>) -> ConsumerConfig {
        let streams = self.partitions(subscription);
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        let mut config = self.events.consumer(subscription.group, &streams);
        config.event_types = Some(
            subscription
                .event_types
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        );
        config.order_key = subscription.order_key;
        config
    }
}
