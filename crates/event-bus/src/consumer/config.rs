//! How a consumer reads: its group, streams, limits and timers.

use std::time::Duration;

use crate::envelope::Envelope;

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
