//! What a service declares ([`Spec`], [`Subscription`]) and what it stands on once
//! connected ([`Host`]).

use event_bus::{Consumer, ConsumerConfig, Effect, Envelope, EventsConfig, Relay, RelayConfig};
use event_bus::{Stream, Wake};
use service_kit::config::{HttpConfig, ServiceConfig};
use service_kit::ops::Readiness;
use service_kit::server::Server;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::error::HostError;

/// What a service is: its name (also its consumer group and its events' source), its
/// version, where it listens unless told otherwise, its migrations, and the streams it
/// publishes to and consumes.
pub struct Spec {
    pub name: &'static str,
    pub version: &'static str,
    pub default_port: u16,
    pub migrator: &'static Migrator,
    /// The streams its outbox publishes to (names under the prefix); none for a service
    /// that publishes nothing, which then runs no relay.
    pub publishes: &'static [&'static str],
    /// None for a service that only publishes.
    pub consumes: Option<Subscription>,
}

/// What a service consumes: the streams (names under the prefix) and event types it
/// reads.
pub struct Subscription {
    pub streams: &'static [&'static str],
    pub event_types: &'static [&'static str],
    /// Events with one ordering key ([`Envelope::key`]: an order's id) are handled one
    /// at a time, in stream order; without it, every event as soon as a handler is free.
    pub in_key_order: bool,
}

impl Spec {
    /// A service that publishes and consumes nothing; [`publishes`](Self::publishes) and
    /// [`consumes`](Self::consumes) say what it does on the bus.
    pub const fn new(
        name: &'static str,
        version: &'static str,
        default_port: u16,
        migrator: &'static Migrator,
    ) -> Self {
        Self {
            name,
            version,
            default_port,
            migrator,
            publishes: &[],
            consumes: None,
        }
    }

    /// Its outbox publishes to these streams.
    pub const fn publishes(self, streams: &'static [&'static str]) -> Self {
        Self {
            publishes: streams,
            ..self
        }
    }

    /// It consumes these event types from these streams, one ordering key at a time in
    /// stream order (a saga participant).
    pub const fn consumes(
        self,
        streams: &'static [&'static str],
        event_types: &'static [&'static str],
    ) -> Self {
        self.subscribed(streams, event_types, true)
    }

    /// It consumes these event types from these streams as soon as a handler is free,
    /// whatever their keys (each event stands alone).
    pub const fn consumes_in_any_order(
        self,
        streams: &'static [&'static str],
        event_types: &'static [&'static str],
    ) -> Self {
        self.subscribed(streams, event_types, false)
    }

    const fn subscribed(
        self,
        streams: &'static [&'static str],
        event_types: &'static [&'static str],
        in_key_order: bool,
    ) -> Self {
        Self {
            consumes: Some(Subscription {
                streams,
                event_types,
                in_key_order,
            }),
            ..self
        }
    }
}

/// A service's database and Redis, connected and migrated, with its event settings.
pub struct Host {
    pub spec: &'static Spec,
    pub pool: PgPool,
    pub redis: service_kit::redis::Connection,
    redis_client: service_kit::redis::Client,
    pub(crate) http: HttpConfig,
    events: EventsConfig,
    wake: Wake,
}

fn by_key(event: &Envelope) -> Option<String> {
    event.key.clone()
}

impl Host {
    /// Connects to Postgres (migrating it with the spec's migrations, then installing
    /// the outbox and inbox tables) and to Redis, waiting for each as configured.
    pub async fn connect(
        spec: &'static Spec,
        service: &ServiceConfig,
        events: &EventsConfig,
    ) -> Result<Self, HostError> {
        // The consumer's handlers hold one connection each (a consumer of effects one at
        // a time, fewer than that bound); the relay opens its own.
        let background = match spec.consumes {
            Some(_) => u32::from(events.event_consumer_concurrency),
            None => 0,
        };
        let pool = service_kit::database::connect_and_migrate(
            &service.database,
            background,
            spec.migrator,
        )
        .await?;
        event_bus::schema::install(&pool)
            .await
            .map_err(HostError::Schema)?;
        let redis = service.redis.connect().await?;
        let redis_client = service.redis.client().map_err(HostError::RedisUrl)?;
        service_kit::metrics::handle();
        Ok(Self {
            spec,
            pool,
            redis,
            redis_client,
            http: service.http.clone(),
            events: events.clone(),
            wake: Wake::new(),
        })
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

    /// Ready when both Postgres and Redis answer.
    pub(crate) fn readiness(&self) -> Readiness {
        Readiness::new()
            .with_postgres(self.pool.clone())
            .with_redis(self.redis.clone())
    }

    /// Every partition of the streams the service consumes.
    pub(crate) fn partitions(&self) -> Vec<String> {
        self.spec
            .consumes
            .iter()
            .flat_map(|s| s.streams)
            .flat_map(|s| self.stream(s).partitions())
            .collect()
    }

    /// Runs the outbox relay beside `service`.
    pub(crate) fn start_relay(&self, service: &Server) {
        let relay = Relay::new(
            self.pool.clone(),
            self.events.publisher(self.redis.clone()),
            RelayConfig::default(),
            self.wake.clone(),
        );
        service.spawn_task("outbox relay", |cancel| relay.run(cancel));
    }

    /// Runs the consumer of `subscription` beside `service`, applying `effect` to each
    /// event exactly once, events ready together in one transaction.
    pub(crate) fn start_effects(
        &self,
        service: &Server,
        subscription: &Subscription,
        effect: impl Effect,
    ) {
        let consumer = Consumer::with_effects(
            self.redis_client.clone(),
            self.consumer_config(subscription),
            self.pool.clone(),
            self.wake.clone(),
            effect,
        );
        service.spawn_task("event consumer", |cancel| consumer.run(cancel));
    }

    fn consumer_config(&self, subscription: &Subscription) -> ConsumerConfig {
        let streams = self.partitions();
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        let mut config = self.events.consumer(self.spec.name, &streams);
        config.event_types = Some(
            subscription
                .event_types
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        );
        config.order_key = subscription.in_key_order.then_some(by_key as _);
        config
    }
}
