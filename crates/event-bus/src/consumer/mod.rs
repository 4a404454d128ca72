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
//! The group is created at start (from the start of the stream, so events published
//! before the group existed are not skipped), and again only when Redis answers
//! `NOGROUP` (it restarted empty, or was flushed).
//!
//! Shutdown: reading and reclaiming stop, handlers in flight finish, and what finished
//! is acknowledged.

mod acks;
mod batch;
mod lanes;
mod reader;
mod upkeep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamId;
use service_kit::trace_context::{self, TraceParent};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ENVELOPE_FIELD;
use crate::envelope::Envelope;
use crate::inbox::Effect;
use crate::outbox::Wake;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again later (a database or peer outage): the entry stays pending.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (a payload that does not parse): dead-lettered at once.
    #[error("{0:#}")]
    Poison(anyhow::Error),
}

impl HandlerError {
    /// A failure worth retrying: `.map_err(HandlerError::retry)`.
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Self::Retry(error.into())
    }

    /// A failure that will never succeed: `.map_err(HandlerError::poison)`.
    pub fn poison(error: impl Into<anyhow::Error>) -> Self {
        Self::Poison(error.into())
    }
}

/// A handler: given an envelope, apply it. Unknown event types should return `Ok`.
pub type Handler =
    Arc<dyn Fn(Envelope) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// How a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer group: the consuming service's name.
    pub group: String,
    /// This process's name in the group; unique per process.
    pub consumer: String,
    /// Streams to read, e.g. `events:order`.
    pub streams: Vec<String>,
    /// Most entries read per call.
    pub batch_size: usize,
    /// Entries read and not yet finished (handled, failed or dead-lettered), at most.
    pub max_in_flight: usize,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// Handlers running at once.
    pub concurrency: usize,
    /// A handler running longer is abandoned and its entry retried.
    pub handler_timeout: Duration,
    /// Entries pending longer than this are reclaimed; keep it above `handler_timeout`.
    pub min_idle: Duration,
    /// How often to reclaim.
    pub reclaim_interval: Duration,
    /// Deliveries after which an entry is dead-lettered.
    pub max_deliveries: u64,
    /// The event types this consumer handles; others are acknowledged and counted
    /// (`events_unknown_total`). `None`: every type goes to the handler.
    pub event_types: Option<Vec<String>>,
    /// Keeps events of one key (e.g. an order id from the payload) in stream order.
    pub order_key: Option<fn(&Envelope) -> Option<String>>,
    /// Consumers of the group idle longer than this with nothing pending are removed
    /// (they belonged to processes that are gone).
    pub forget_idle_consumers_after: Duration,
}

impl ConsumerConfig {
    /// Defaults for `group` reading `streams`, with a consumer name unique to this
    /// process.
    pub fn new(group: impl Into<String>, streams: &[&str]) -> Self {
        let group = group.into();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
        Self {
            consumer: format!("{group}-{host}-{}", uuid::Uuid::new_v4().simple()),
            group,
            streams: streams.iter().map(|s| (*s).to_owned()).collect(),
            batch_size: 100,
            max_in_flight: 256,
            block: Duration::from_secs(2),
            concurrency: 16,
            handler_timeout: Duration::from_secs(10),
            min_idle: Duration::from_secs(30),
            reclaim_interval: Duration::from_secs(5),
            max_deliveries: 5,
            event_types: None,
            order_key: None,
            forget_idle_consumers_after: Duration::from_secs(3600),
        }
    }
}

/// An entry read from a stream.
struct Entry {
    stream: String,
    id: String,
    envelope: Result<Envelope, String>,
}

/// A consumer-group worker.
///
/// It holds two connections: one for blocking reads alone, because Redis answers a
/// connection's commands in order and a `BLOCK`ed read would hold up every command
/// behind it (acknowledgements, reclaiming), and one for everything else.
#[derive(Clone)]
pub struct Consumer {
    shared: Arc<Shared>,
}

/// What every part of a consumer uses.
struct Shared {
    client: redis::Client,
    commands: OnceCell<ConnectionManager>,
    reads: OnceCell<ConnectionManager>,
    config: ConsumerConfig,
    handling: Handling,
    /// The last error per entry, for the dead letter.
    errors: Mutex<HashMap<String, String>>,
}

/// How entries are applied.
enum Handling {
    /// Each by the handler, which does its own transaction if it has one.
    Each(Handler),
    /// By an effect, in transactions the consumer opens, shared by events ready together.
    Effects(Arc<batch::Effects>),
}

impl Consumer {
    /// A consumer whose `handler` applies each event on its own.
    pub fn new<F, Fut>(client: redis::Client, config: ConsumerConfig, handler: F) -> Self
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
        client: redis::Client,
        config: ConsumerConfig,
        pool: sqlx::PgPool,
        wake: Wake,
        effect: impl Effect,
    ) -> Self {
        let effects = batch::Effects {
            pool,
            effect: Arc::new(effect),
            wake,
        };
        Self::build(client, config, Handling::Effects(Arc::new(effects)))
    }

    fn build(client: redis::Client, config: ConsumerConfig, handling: Handling) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                commands: OnceCell::new(),
                reads: OnceCell::new(),
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

impl Shared {
    /// The connection for every command but blocking reads.
    async fn commands(&self) -> redis::RedisResult<ConnectionManager> {
        self.commands
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
    }

    /// The connection for blocking reads, whose answers may take the whole `block`.
    async fn reads(&self) -> redis::RedisResult<ConnectionManager> {
        let timeout = self.config.block + Duration::from_secs(5);
        self.reads
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(
                    self.client.clone(),
                    ConnectionManagerConfig::new().set_response_timeout(Some(timeout)),
                )
            })
            .await
            .cloned()
    }

    async fn ensure_groups(&self) -> redis::RedisResult<()> {
        let mut redis = self.commands().await?;
        for stream in &self.config.streams {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.config.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut redis)
                .await;
            match created {
                Ok(()) => {}
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Creates the groups, retrying with capped backoff while Redis is down; `false` if
    /// cancelled first.
    async fn create_groups_patiently(&self, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new();
        loop {
            match self.ensure_groups().await {
                Ok(()) => return true,
                Err(error) => {
                    if !backoff.wait(&self.config.group, &error, cancel).await {
                        return false;
                    }
                }
            }
        }
    }

    /// After a command failed: recreates the groups if Redis lost them.
    async fn recover(&self, error: &redis::RedisError) {
        if error.code() == Some("NOGROUP")
            && let Err(error) = self.ensure_groups().await
        {
            tracing::warn!(group = %self.config.group, %error, "cannot recreate the consumer group");
        }
    }

    fn remember_error(&self, id: &str, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.insert(id.to_owned(), error);
        }
    }

    fn forget_errors<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut errors) = self.errors.lock() {
            for id in ids {
                errors.remove(id);
            }
        }
    }
}

/// Capped exponential backoff after a failed Redis command, 100 ms to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }

    /// Logs `error` and waits; `false` if cancelled meanwhile.
    async fn wait(
        &mut self,
        group: &str,
        error: &redis::RedisError,
        cancel: &CancellationToken,
    ) -> bool {
        let wait = self.0;
        tracing::warn!(%group, %error, retry_in_ms = wait.as_millis() as u64, "consumer failed; retrying");
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }
}

/// One handler call, bounded by the handler timeout; an unreadable envelope is poison.
async fn run_handler(
    handler: &Handler,
    entry: &Entry,
    timeout: Duration,
) -> Result<(), HandlerError> {
    match &entry.envelope {
        Err(reason) => Err(HandlerError::Poison(anyhow::anyhow!("{reason}"))),
        Ok(envelope) => tokio::time::timeout(timeout, traced(envelope, handler(envelope.clone())))
            .await
            .unwrap_or_else(|_| Err(HandlerError::Retry(anyhow::anyhow!("handler timed out")))),
    }
}

/// Runs `handling` (the handling of `envelope`) in the event's trace, timed.
///
/// The handling continues the event's trace (a new span of it), so the calls it makes
/// and the events it emits stay in the trace that produced the event.
async fn traced<T>(envelope: &Envelope, handling: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let trace = envelope
        .trace()
        .map_or_else(TraceParent::new_root, |t| t.child());
    let span = tracing::info_span!(
        "event",
        event_id = %envelope.id,
        event_type = %envelope.event_type,
        trace_id = %trace.trace_id_hex(),
    );
    let started_at = std::time::SystemTime::now();
    let result = trace_context::scope(trace, handling).instrument(span).await;
    service_kit::otel::record(
        service_kit::otel::Kind::Consumer,
        trace,
        envelope.trace().map(|t| t.span_id),
        started_at,
        || {
            (
                format!("{} process", envelope.event_type).into(),
                vec![
                    opentelemetry::KeyValue::new("messaging.system", "redis"),
                    opentelemetry::KeyValue::new("messaging.message.id", envelope.id.to_string()),
                    opentelemetry::KeyValue::new("messaging.operation.type", "process"),
                ],
            )
        },
    );
    metrics::histogram!("events_handler_duration_seconds").record(started.elapsed().as_secs_f64());
    result
}

fn to_entry(stream: &str, entry: StreamId) -> Entry {
    let envelope = match entry.map.get(ENVELOPE_FIELD) {
        Some(Value::BulkString(bytes)) => serde_json::from_slice::<Envelope>(bytes).map_err(|e| {
            format!(
                "unreadable envelope: {e}: {}",
                String::from_utf8_lossy(bytes)
            )
        }),
        Some(other) => Err(format!("unexpected envelope value: {other:?}")),
        None => Err("entry has no envelope field".to_owned()),
    };
    Entry {
        stream: stream.to_owned(),
        id: entry.id,
        envelope,
    }
}

/// A Redis reply value as text (empty when it is not one).
pub(crate) fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Pending entries and lag of `group` on `stream` (`XINFO GROUPS`), for metrics and
/// tests.
pub async fn group_info(
    redis: &ConnectionManager,
    stream: &str,
    group: &str,
) -> redis::RedisResult<Option<(u64, Option<u64>)>> {
    let mut redis = redis.clone();
    let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut redis)
        .await?;
    Ok(groups.into_iter().find_map(|info| {
        (text(info.get("name")) == group).then(|| {
            let pending = integer(info.get("pending")).and_then(|n| u64::try_from(n).ok());
            let lag = integer(info.get("lag")).and_then(|n| u64::try_from(n).ok());
            (pending.unwrap_or(0), lag)
        })
    }))
}
