//! The envelope every event travels in.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use service_kit::trace_context::{self, TraceParent};
use uuid::Uuid;

/// The stream field that holds the JSON envelope.
pub const ENVELOPE_FIELD: &str = "envelope";

/// `{id, type, version, source, occurred_at, correlation_id, causation_id, traceparent,
/// key, data}`.
///
/// `data` is kept as JSON here; handlers decode it into their typed payload with
/// [`Envelope::decode`], so an unknown type can be skipped without a payload type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; the inbox deduplicates by it.
    pub id: Uuid,
    /// e.g. `order.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload schema version.
    pub version: u32,
    /// The producing service.
    pub source: String,
    pub occurred_at: DateTime<Utc>,
    /// The request or saga this event belongs to (the request id that started it).
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    /// The W3C trace this event belongs to: a span of the request or event that produced
    /// it, so one trace runs across HTTP calls and event hops alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The entity whose events must stay in order (e.g. an order id): it picks the
    /// stream partition the event goes to, so one entity's events share a partition.
    /// Events caused by this one inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub data: serde_json::Value,
}

/// The span publishing an event of `event_type` under `parent`, recorded: the span the
/// consumers' spans continue.
fn publishing(event_type: &str, parent: TraceParent) -> TraceParent {
    let span = parent.child();
    service_kit::otel::record(
        service_kit::otel::Kind::Producer,
        span,
        Some(parent.span_id),
        std::time::SystemTime::now(),
        || (format!("{event_type} publish").into(), Vec::new()),
    );
    span
}

impl Envelope {
    /// A new event of `event_type` from `source` carrying `data`, in the trace of the
    /// request or event being handled (if any).
    pub fn new(
        event_type: impl Into<String>,
        source: impl Into<String>,
        data: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        let event_type = event_type.into();
        let traceparent = trace_context::current().map(|parent| publishing(&event_type, parent));
        Ok(Self {
            id: Uuid::now_v7(),
            event_type,
            version: 1,
            source: source.into(),
            occurred_at: Utc::now(),
            correlation_id: None,
            causation_id: None,
            traceparent: traceparent.map(|t| t.to_string()),
            key: None,
            data: serde_json::to_value(data)?,
        })
    }

    /// Sets the correlation id.
    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Sets the ordering key (see [`Envelope::key`]).
    pub fn keyed(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Marks this event as caused by `cause`, inheriting its correlation id and
    /// ordering key.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causation_id = Some(cause.id);
        if self.key.is_none() {
            self.key.clone_from(&cause.key);
        }
        if self.correlation_id.is_none() {
            self.correlation_id.clone_from(&cause.correlation_id);
        }
        if self.traceparent.is_none() {
            // Outside any request or handler: the effect continues its cause's trace.
            self.traceparent = cause
                .trace()
                .map(|parent| publishing(&self.event_type, parent).to_string());
        }
        self
    }

    /// The trace this event belongs to, if it carries a valid `traceparent`.
    pub fn trace(&self) -> Option<TraceParent> {
        self.traceparent.as_deref().and_then(TraceParent::parse)
    }

    /// The payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_made_while_handling_a_request_carries_its_trace() {
        let request = TraceParent::new_root();
        let event = trace_context::scope(request, async {
            Envelope::new("order.created", "order", &serde_json::json!({})).unwrap()
        })
        .await;
        let trace = event.trace().expect("a traceparent");
        assert_eq!(trace.trace_id, request.trace_id);
        assert_ne!(trace.span_id, request.span_id, "a span of its own");

        // Outside any request, an effect inherits its cause's trace.
        let effect = Envelope::new("inventory.reserved", "inventory", &serde_json::json!({}))
            .unwrap()
            .caused_by(&event);
        assert_eq!(effect.trace().unwrap().trace_id, request.trace_id);
        let untraced = Envelope::new("x", "y", &serde_json::json!({})).unwrap();
        assert!(untraced.traceparent.is_none());
        assert!(
            !serde_json::to_string(&untraced)
                .unwrap()
                .contains("traceparent"),
            "absent, not null"
        );
    }

    #[test]
    fn an_envelope_round_trips_with_type_as_the_member_name() {
        let cause = Envelope::new("order.created", "order", &serde_json::json!({"n": 1}))
            .unwrap()
            .correlated("req-1")
            .keyed("order-1");
        let effect = Envelope::new(
            "inventory.reserved",
            "inventory",
            &serde_json::json!({"ok": true}),
        )
        .unwrap()
        .caused_by(&cause);
        let json = serde_json::to_value(&effect).unwrap();
        assert_eq!(json["type"], "inventory.reserved");
        assert_eq!(json["correlation_id"], "req-1");
        assert_eq!(json["causation_id"], cause.id.to_string());
        assert_eq!(json["key"], "order-1", "the ordering key is inherited");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, effect);
    }
}
