//! The consumer-group worker: one per process and group, reading one or more streams.
//!
//! On start it creates its group if needed (from the start of the stream, so events
//! published before the group existed are not skipped), re-reads what it had been given
//! and not acknowledged, then reads new entries in batches (`COUNT`, `BLOCK`). Handlers
//! run concurrently up to a bound; an entry is acknowledged only after its handler
//! succeeded. A failed entry stays pending; the reclaim pass (`XAUTOCLAIM`) hands
//! entries idle longer than `min_idle` (from this consumer or a dead one) to this
//! consumer again, and one delivered more than `max_deliveries` times is copied to the
//! dead-letter stream with its error and acknowledged. After `NOGROUP` (Redis restarted
//! or flushed) the group is recreated.
//!
//! Shutdown: reading stops, handlers in flight finish, and what finished is
//! acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use service_kit::trace_context::{self, TraceParent};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::envelope::Envelope;
use crate::{ENVELOPE_FIELD, dead_letter_stream};

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
    /// Entries read per call.
    pub batch_size: usize,
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
/// behind it (acknowledgements, the relay's publishing), and one for everything else.
#[derive(Clone)]
pub struct Consumer {
    client: redis::Client,
    commands: Arc<OnceCell<ConnectionManager>>,
    reads: Arc<OnceCell<ConnectionManager>>,
    config: Arc<ConsumerConfig>,
    handler: Handler,
    /// The last error per entry, for the dead letter.
    errors: Arc<Mutex<HashMap<String, String>>>,
}

impl Consumer {
    pub fn new<F, Fut>(client: redis::Client, config: ConsumerConfig, handler: F) -> Self
    where
        F: Fn(Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |envelope| Box::pin(handler(envelope)));
        Self {
            client,
            commands: Arc::new(OnceCell::new()),
            reads: Arc::new(OnceCell::new()),
            config: Arc::new(config),
            handler,
            errors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

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

    /// Creates the group on every stream unless it exists.
    pub async fn ensure_groups(&self) -> redis::RedisResult<()> {
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

    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        // First what this consumer had been given before (a restart), then new entries.
        let mut read_from = "0";
        let mut last_reclaim = Instant::now();
        while !cancel.is_cancelled() {
            let step = async {
                self.ensure_groups().await?;
                if last_reclaim.elapsed() >= self.config.reclaim_interval {
                    last_reclaim = Instant::now();
                    self.reclaim().await?;
                }
                let entries = self.read(read_from, &cancel).await?;
                if read_from == "0" && entries.is_empty() {
                    read_from = ">";
                }
                self.process(entries).await?;
                Ok::<(), redis::RedisError>(())
            };
            match step.await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(group = %self.config.group, %error, retry_in_ms = backoff.as_millis() as u64, "consumer failed; retrying");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(group = %self.config.group, consumer = %self.config.consumer, "consumer stopped");
    }

    async fn read(&self, from: &str, cancel: &CancellationToken) -> redis::RedisResult<Vec<Entry>> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(self.config.batch_size);
        if from == ">" {
            command
                .arg("BLOCK")
                .arg(self.config.block.as_millis() as u64);
        }
        command.arg("STREAMS").arg(&self.config.streams);
        for _ in &self.config.streams {
            command.arg(from);
        }
        let mut redis = self.reads().await?;
        let reply: Option<StreamReadReply> = tokio::select! {
            // Blocking reads end early on shutdown; an unread entry is simply not taken.
            () = cancel.cancelled() => return Ok(Vec::new()),
            reply = command.query_async(&mut redis) => reply?,
        };
        Ok(reply
            .map(|reply| {
                reply
                    .keys
                    .into_iter()
                    .flat_map(|key| {
                        let stream = key.key;
                        key.ids
                            .into_iter()
                            .map(move |entry| to_entry(&stream, entry))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Runs the handlers for `entries` (bounded), then acknowledges those that
    /// succeeded or that no handler wants, and dead-letters poison.
    ///
    /// With an `order_key`, entries of one key run one after another, in stream order,
    /// and a failure holds back the rest of its key until it is retried; different keys
    /// run concurrently. Without one, every entry runs concurrently.
    async fn process(&self, entries: Vec<Entry>) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut done: Vec<(String, String)> = Vec::new();
        let mut lanes: Vec<Vec<Entry>> = Vec::new();
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        for entry in entries {
            if let (Ok(envelope), Some(wanted)) = (&entry.envelope, &self.config.event_types)
                && !wanted.contains(&envelope.event_type)
            {
                // Not for us (a newer producer, another consumer's type): acknowledge.
                metrics::counter!("events_unknown_total", "group" => self.config.group.clone())
                    .increment(1);
                done.push((entry.stream, entry.id));
                continue;
            }
            let key = match (&entry.envelope, self.config.order_key) {
                (Ok(envelope), Some(order_key)) => order_key(envelope),
                _ => None,
            };
            match key {
                Some(key) => {
                    let lane = *lane_of.entry(key).or_insert_with(|| {
                        lanes.push(Vec::new());
                        lanes.len() - 1
                    });
                    lanes[lane].push(entry);
                }
                None => lanes.push(vec![entry]),
            }
        }

        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = JoinSet::new();
        for lane in lanes {
            let handler = self.handler.clone();
            let permits = permits.clone();
            let timeout = self.config.handler_timeout;
            running.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let mut outcomes = Vec::with_capacity(lane.len());
                let mut held_back = false;
                for entry in lane {
                    if held_back {
                        // Left pending, to be reclaimed after the entry that failed.
                        continue;
                    }
                    let outcome = run_handler(&handler, &entry, timeout).await;
                    held_back = outcome.is_err();
                    outcomes.push((entry, outcome));
                }
                outcomes
            });
        }
        let mut poison: Vec<(Entry, String)> = Vec::new();
        while let Some(joined) = running.join_next().await {
            let Ok(outcomes) = joined else {
                continue;
            };
            for (entry, outcome) in outcomes {
                match outcome {
                    Ok(()) => {
                        metrics::counter!("events_processed_total", "group" => self.config.group.clone()).increment(1);
                        done.push((entry.stream, entry.id));
                    }
                    Err(HandlerError::Retry(error)) => {
                        metrics::counter!("events_failed_total", "group" => self.config.group.clone())
                            .increment(1);
                        tracing::warn!(group = %self.config.group, entry = %entry.id, error = format!("{error:#}"), "handler failed; will retry");
                        self.remember_error(&entry.id, format!("{error:#}"));
                    }
                    Err(HandlerError::Poison(error)) => poison.push((entry, format!("{error:#}"))),
                }
            }
        }
        for (entry, error) in poison {
            self.dead_letter(&entry, &error, 1).await?;
        }
        self.ack(&done).await
    }

    async fn ack(&self, entries: &[(String, String)]) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (stream, id) in entries {
            pipe.cmd("XACK")
                .arg(stream)
                .arg(&self.config.group)
                .arg(id)
                .ignore();
        }
        if let Ok(mut errors) = self.errors.lock() {
            for (_, id) in entries {
                errors.remove(id);
            }
        }
        let mut redis = self.commands().await?;
        pipe.query_async::<()>(&mut redis).await
    }

    fn remember_error(&self, id: &str, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.insert(id.to_owned(), error);
        }
    }

    /// Copies `entry` to its stream's dead-letter stream with why, then acknowledges it.
    async fn dead_letter(
        &self,
        entry: &Entry,
        error: &str,
        deliveries: u64,
    ) -> redis::RedisResult<()> {
        let raw = match &entry.envelope {
            Ok(envelope) => serde_json::to_string(envelope).unwrap_or_default(),
            Err(reason) => reason.clone(),
        };
        let mut redis = self.commands().await?;
        redis::cmd("XADD")
            .arg(dead_letter_stream(&entry.stream))
            .arg("*")
            .arg(ENVELOPE_FIELD)
            .arg(raw)
            .arg("error")
            .arg(error)
            .arg("group")
            .arg(&self.config.group)
            .arg("stream")
            .arg(&entry.stream)
            .arg("original_id")
            .arg(&entry.id)
            .arg("deliveries")
            .arg(deliveries)
            .query_async::<String>(&mut redis)
            .await?;
        metrics::counter!("events_dead_lettered_total", "group" => self.config.group.clone())
            .increment(1);
        tracing::error!(group = %self.config.group, stream = %entry.stream, entry = %entry.id, error, "event dead-lettered");
        self.ack(&[(entry.stream.clone(), entry.id.clone())]).await
    }

    /// Claims entries idle longer than `min_idle` (this consumer's failures and those of
    /// consumers that died), dead-letters the ones delivered too often, and processes
    /// the rest.
    pub async fn reclaim(&self) -> redis::RedisResult<()> {
        for stream in &self.config.streams {
            let mut redis = self.commands().await?;
            self.observe_and_tidy(stream).await?;
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(&self.config.group)
                .arg(&self.config.consumer)
                .arg(self.config.min_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.config.batch_size)
                .query_async(&mut redis)
                .await?;
            if reply.claimed.is_empty() {
                continue;
            }
            let deliveries = self.delivery_counts(stream, &reply.claimed).await?;
            let mut again = Vec::new();
            for entry in reply.claimed {
                let entry = to_entry(stream, entry);
                let count = deliveries.get(&entry.id).copied().unwrap_or(1);
                if count > self.config.max_deliveries {
                    let error = self
                        .errors
                        .lock()
                        .ok()
                        .and_then(|errors| errors.get(&entry.id).cloned())
                        .unwrap_or_else(|| {
                            format!("not acknowledged after {} deliveries", count - 1)
                        });
                    self.dead_letter(&entry, &error, count - 1).await?;
                } else {
                    metrics::counter!("events_retried_total", "group" => self.config.group.clone())
                        .increment(1);
                    again.push(entry);
                }
            }
            self.process(again).await?;
        }
        Ok(())
    }

    /// Exports the group's pending count and lag on `stream`, and removes consumers of
    /// the group that have been idle for long with nothing pending.
    async fn observe_and_tidy(&self, stream: &str) -> redis::RedisResult<()> {
        let labels = [
            ("group", self.config.group.clone()),
            ("stream", stream.to_owned()),
        ];
        if let Some((pending, lag)) =
            group_info(&self.commands().await?, stream, &self.config.group).await?
        {
            metrics::gauge!("events_pending", &labels).set(pending as f64);
            if let Some(lag) = lag {
                metrics::gauge!("events_lag", &labels).set(lag as f64);
            }
        }
        let mut redis = self.commands().await?;
        let consumers: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(&self.config.group)
            .query_async(&mut redis)
            .await?;
        let threshold = self.config.forget_idle_consumers_after.as_millis() as i64;
        for consumer in consumers {
            let name = text(consumer.get("name"));
            let pending = integer(consumer.get("pending"));
            let idle = integer(consumer.get("idle"));
            if name != self.config.consumer
                && pending == Some(0)
                && idle.is_some_and(|idle| idle > threshold)
            {
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(stream)
                    .arg(&self.config.group)
                    .arg(&name)
                    .query_async::<i64>(&mut redis)
                    .await?;
                tracing::info!(group = %self.config.group, consumer = %name, "removed an idle consumer");
            }
        }
        Ok(())
    }

    /// How many times each of `entries` has been delivered, from `XPENDING`.
    async fn delivery_counts(
        &self,
        stream: &str,
        entries: &[StreamId],
    ) -> redis::RedisResult<HashMap<String, u64>> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(HashMap::new());
        };
        let mut redis = self.commands().await?;
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(&self.config.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(entries.len())
            .arg(&self.config.consumer)
            .query_async(&mut redis)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, _, _, deliveries)| (id, deliveries))
            .collect())
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
        Ok(envelope) => {
            let started = Instant::now();
            // The handler continues the event's trace (a new span of it), so the calls it
            // makes and the events it emits stay in the trace that produced the event.
            let trace = envelope
                .trace()
                .map_or_else(TraceParent::new_root, |t| t.child());
            let span = tracing::info_span!(
                "event",
                event_id = %envelope.id,
                event_type = %envelope.event_type,
                trace_id = %trace.trace_id_hex(),
            );
            let handled = trace_context::scope(trace, handler(envelope.clone())).instrument(span);
            let started_at = std::time::SystemTime::now();
            let result = tokio::time::timeout(timeout, handled).await;
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
                            opentelemetry::KeyValue::new(
                                "messaging.message.id",
                                envelope.id.to_string(),
                            ),
                            opentelemetry::KeyValue::new("messaging.operation.type", "process"),
                        ],
                    )
                },
            );
            metrics::histogram!("events_handler_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            result
                .unwrap_or_else(|_| Err(HandlerError::Retry(anyhow::anyhow!("handler timed out"))))
        }
    }
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
