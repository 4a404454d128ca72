//! The consumer-group worker: one per process and group, reading one or more streams.
//!
//! It is four parts joined by channels, each in its own module, so that no entry ever
//! waits for another it has nothing to do with:
//!
//! - [`reader`]: keeps up to `max_in_flight` entries in flight. It reads (`XREADGROUP`,
//!   `COUNT` = the free slots, `BLOCK`) as soon as a slot frees up, not when a batch is
//!   done; first what this consumer had been given before, then new entries.
//! - [`lanes`]: runs the handlers, up to `concurrency` at once (a consumer of
//!   [`Effect`]s instead hands them to [`batch`], which commits the effects of events
//!   ready together in one transaction). With an `order_key`,
//!   the entries of one key run one after another in stream order (a lane), however
//!   many reads they came in; different keys, and entries without a key, never wait
//!   for each other.
//! - [`acks`]: acknowledges an entry as soon as its handler succeeded. Entries that
//!   finish while an `XACK` is on its way go together in the next one.
//! - [`upkeep`]: on its own task and timer: reclaims entries left pending longer than
//!   `min_idle` (failed here, or left by a consumer that died) and hands them to the
//!   lanes again, dead-letters those delivered more than `max_deliveries` times,
//!   exports pending and lag, and removes consumers of processes that are gone.
//!
//! What the parts share is in modules of its own, so none imports this one back:
//! [`config`] (how a consumer reads), [`entry`] (an entry and its decoded envelope),
//! [`handler`] (a handler or the batched effects, and one call in the event's trace),
//! [`shared`] (connections, group creation, backoff) and [`dead`] (dead-lettering).
//!
//! The group is created at start (from the start of the stream, so events published
//! before the group existed are not skipped), and again only when Redis answers
//! `NOGROUP` (it restarted empty, or was flushed).
//!
//! Shutdown: reading and reclaiming stop, handlers in flight finish, and what finished
//! is acknowledged.

mod acks;
mod batch;
mod config;
mod dead;
mod entry;
mod handler;
mod lanes;
mod reader;
mod shared;
mod upkeep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::envelope::Envelope;
use crate::inbox::Effect;
use crate::outbox::Wake;
use handler::{Effects, Handler, Handling};
use shared::Shared;

pub use crate::error::HandlerError;
pub use config::ConsumerConfig;

/// A consumer-group worker.
///
/// It holds a connection for blocking reads alone (one per stream on a cluster),
/// because Redis answers a connection's commands in order and a `BLOCK`ed read would
/// hold up every command behind it (acknowledgements, reclaiming), and one for
/// everything else.
#[derive(Clone)]
pub struct Consumer {
    shared: Arc<Shared>,
}

impl Consumer {
    /// A consumer whose `handler` applies each event on its own.
    pub fn new<F, Fut>(
        client: service_kit::redis::Client,
        config: ConsumerConfig,
        handler: F,
    ) -> Self
    where
        F: Fn(Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |envelope| Box::pin(handler(envelope)));
        Self::build(client, config, Handling::Each(handler))
    }

    /// A consumer that applies `effect` exactly once per event (the inbox, the config's
    /// group), in transactions on `pool` that it commits, waking the relay with `wake`:
    /// events ready together share a transaction ([`batch`](self#)).
    pub fn with_effects(
        client: service_kit::redis::Client,
        config: ConsumerConfig,
        pool: sqlx::PgPool,
        wake: Wake,
        effect: impl Effect,
    ) -> Self {
        let effects = Effects {
            pool,
            effect: Arc::new(effect),
            wake,
        };
        Self::build(client, config, Handling::Effects(Arc::new(effects)))
    }

    fn build(
        client: service_kit::redis::Client,
        config: ConsumerConfig,
        handling: Handling,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                commands: OnceCell::new(),
                config,
                handling,
                errors: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// Creates the group on every stream unless it exists.
    pub async fn ensure_groups(&self) -> redis::RedisResult<()> {
        self.shared.ensure_groups().await
    }

    /// Runs until `cancel`, then lets the handlers in flight finish and acknowledges
    /// what they finished.
    pub async fn run(self, cancel: CancellationToken) {
        let shared = self.shared;
        let group = shared.config.group.clone();
        if !shared.create_groups_patiently(&cancel).await {
            return;
        }
        tracing::info!(%group, consumer = %shared.config.consumer, "consumer started");
        // The parts run as tasks of their own; should this future be dropped (its task
        // aborted) rather than cancelled, they stop where they are, as a process that
        // died would, and leave what they held pending.
        let abandoned = CancellationToken::new();
        let _abandon_when_dropped = abandoned.clone().drop_guard();
        let (acks, acked) = acks::channel();
        let acker = tokio::spawn(
            abandoned
                .clone()
                .run_until_cancelled_owned(acks::run(shared.clone(), acked)),
        );
        let batcher = match &shared.handling {
            Handling::Each(_) => None,
            Handling::Effects(effects) => {
                let (batcher, run) = batch::Batcher::start(shared.clone(), effects.clone());
                tokio::spawn(abandoned.clone().run_until_cancelled_owned(run));
                Some(batcher)
            }
        };
        let lanes = lanes::Lanes::new(shared.clone(), acks, batcher, abandoned.clone());
        let upkeep = tokio::spawn(abandoned.clone().run_until_cancelled_owned(upkeep::run(
            shared.clone(),
            lanes.clone(),
            cancel.clone(),
        )));
        reader::run(&shared, &lanes, &cancel).await;
        if let Err(error) = upkeep.await {
            tracing::error!(%group, %error, "consumer upkeep panicked");
        }
        lanes.finish().await;
        // The lanes held the last senders of acknowledgements: the acker flushes and ends.
        drop(lanes);
        if let Err(error) = acker.await {
            tracing::error!(%group, %error, "consumer acknowledgements panicked");
        }
        tracing::info!(%group, consumer = %shared.config.consumer, "consumer stopped");
    }
}
