//! [`Launch`]: a connected [`Host`] and its routes, on their way to a running
//! [`Server`].

use service_kit::config::Secret;
use service_kit::server::Server;

use crate::error::HostError;
use crate::host::Host;
use crate::ops::{Milestones, OpsApi};

/// Starts the consumer beside the server, once there is one.
type StartConsumer = Box<dyn FnOnce(&Host, &Server) + Send>;

impl Host {
    /// `routes` (with their state) as this service's API, behind `key`: the start of
    /// the chain that runs it.
    pub fn serve(self, routes: axum::Router, key: &Secret) -> Launch {
        Launch {
            host: self,
            routes,
            key: key.clone(),
            consumer: None,
            milestones: None,
        }
    }
}

/// What [`Host::serve`] began: add the event effect (a consuming service must) and the
/// service's own milestones, then [`Launch::start`].
pub struct Launch {
    host: Host,
    routes: axum::Router,
    key: Secret,
    consumer: Option<StartConsumer>,
    milestones: Option<Milestones>,
}

impl Launch {
    /// Applies `effect` to each event the spec's subscription reads, exactly once.
    pub fn consuming(mut self, effect: impl event_bus::Effect) -> Self {
        self.consumer = Some(Box::new(move |host, server| {
            if let Some(subscription) = &host.spec.consumes {
                host.start_effects(server, subscription, effect);
            }
        }));
        self
    }

    /// Adds the service's own milestones to the journeys its ops API reports.
    pub fn with_milestones(mut self, milestones: Milestones) -> Self {
        self.milestones = Some(milestones);
        self
    }

    /// Binds the listen address and starts the outbox relay (for a service that
    /// publishes) and the consumer beside the server. A spec that consumes needs an effect ([`Launch::consuming`]), and
    /// one that does not takes none: either mismatch is an error here, not a consumer
    /// silently missing.
    pub async fn start(self) -> Result<Server, HostError> {
        let Self {
            host,
            routes,
            key,
            consumer,
            milestones,
        } = self;
        let spec = host.spec;
        match (&spec.consumes, &consumer) {
            (Some(_), None) => return Err(HostError::NoEffect(spec.name)),
            (None, Some(_)) => return Err(HostError::NothingToConsume(spec.name)),
            _ => {}
        }
        let readiness = host.readiness();
        let ops = OpsApi {
            service: spec.name,
            version: spec.version,
            sources: event_bus::ops::Sources {
                pool: host.pool.clone(),
                redis: host.redis.clone(),
                subscription: spec
                    .consumes
                    .as_ref()
                    .map(|_| (spec.name.to_owned(), host.partitions())),
            },
            readiness: readiness.clone(),
            milestones,
        };
        let server = Server::build(
            &host.http,
            spec.default_port,
            routes.merge(crate::ops::router(ops)),
            &key,
            readiness,
        )
        .await?;
        if !spec.publishes.is_empty() {
            host.start_relay(&server);
        }
        if let Some(start) = consumer {
            start(&host, &server);
        }
        Ok(server)
    }
}
