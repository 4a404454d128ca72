//! What applies an entry: a handler of each event, or an effect the consumer batches;
//! and one handler call in the event's trace.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use service_kit::trace_context::{self, TraceParent};
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::Instrument;

use super::entry::Entry;
use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox::Effect;
use crate::outbox::Wake;

/// A handler: given an envelope, apply it. Unknown event types should return `Ok`.
pub type Handler =
    Arc<dyn Fn(Envelope) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// How entries are applied.
pub(super) enum Handling {
    /// Each by the handler, which does its own transaction if it has one.
    Each(Handler),
    /// By an effect, in transactions the consumer opens, shared by events ready together.
    Effects(Arc<Effects>),
}

/// What the batcher applies, and where.
pub(super) struct Effects {
    pub pool: PgPool,
    pub effect: Arc<dyn Effect>,
    pub wake: Wake,
}

/// One handler call, bounded by the handler timeout; an unreadable envelope is poison.
pub(super) async fn run_handler(
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

/// Events handled together (by an effect), each as a span of its own trace: the copies
/// the effect is given carry that span as their `traceparent`, so the events the effect
/// emits (`Envelope::caused_by`) continue each cause's trace under its handling.
pub(super) struct Together {
    pub events: Vec<Envelope>,
    spans: Vec<TraceParent>,
    started: Instant,
    started_at: std::time::SystemTime,
}

impl Together {
    pub fn of(envelopes: &[&Envelope]) -> Self {
        let mut events = Vec::with_capacity(envelopes.len());
        let mut spans = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let span = envelope
                .trace()
                .map_or_else(TraceParent::new_root, |t| t.child());
            let mut event = (*envelope).clone();
            event.traceparent = Some(span.to_string());
            events.push(event);
            spans.push(span);
        }
        Self {
            events,
            spans,
            started: Instant::now(),
            started_at: std::time::SystemTime::now(),
        }
    }

    /// Records each event's handling span (`envelopes`: the events as read) and time.
    pub fn finish(self, envelopes: &[&Envelope]) {
        let elapsed = self.started.elapsed().as_secs_f64();
        for (envelope, span) in envelopes.iter().zip(self.spans) {
            record(envelope, span, self.started_at);
            metrics::histogram!("events_handler_duration_seconds").record(elapsed);
        }
    }
}

/// Records the handling of `envelope` as `span`, begun at `started_at`, in its trace.
fn record(envelope: &Envelope, span: TraceParent, started_at: std::time::SystemTime) {
    service_kit::otel::record(
        service_kit::otel::Kind::Consumer,
        span,
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
    record(envelope, trace, started_at);
    metrics::histogram!("events_handler_duration_seconds").record(started.elapsed().as_secs_f64());
    result
}
