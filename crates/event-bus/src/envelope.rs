//! The envelope every event travels in.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use service_kit::trace_context::{self, TraceParent};
use uuid::Uuid;

/// The stream field that holds the JSON envelope.
pub const ENVELOPE_FIELD: &str = "envelope";

/// A CloudEvents 1.0 event in the structured JSON format: `{specversion, id, source,
/// type, time, datacontenttype, data}` and the extensions `version` (the payload's
/// schema version), `correlationid`, `causationid`, `traceparent` (the distributed
/// tracing extension) and `partitionkey` (the partitioning extension).
///
/// Entries written before the envelope followed CloudEvents (`occurred_at`,
/// `correlation_id`, `causation_id` and `key`, no `specversion`) are read too: each
/// renamed member keeps its old name as a serde alias, and `specversion` and
/// `datacontenttype` default when absent. So entries and outbox rows left by the previous
/// version are consumed after an upgrade. A replica still on the previous version
/// cannot read the new shape; it dead-letters such an entry, which `dead-letters
/// replay` puts back once the replica is upgraded.
///
/// `data` is kept as JSON here; handlers decode it into their typed payload with
/// [`Envelope::decode`], so an unknown type can be skipped without a payload type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The CloudEvents version; a stream entry of any other version is unreadable.
    #[serde(default)]
    pub specversion: SpecVersion,
    /// Unique per event; the inbox deduplicates by it.
    pub id: Uuid,
    /// The producing service (a relative URI reference: `order`).
    pub source: String,
    /// e.g. `order.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the producer made the event (`time`).
    #[serde(rename = "time", alias = "occurred_at")]
    pub occurred_at: DateTime<Utc>,
    /// How `data` is encoded: always JSON.
    #[serde(default)]
    pub datacontenttype: ContentType,
    /// Payload schema version.
    pub version: u32,
    /// The request or saga this event belongs to (the request id that started it).
    #[serde(
        rename = "correlationid",
        alias = "correlation_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    #[serde(
        rename = "causationid",
        alias = "causation_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub causation_id: Option<Uuid>,
    /// The W3C trace this event belongs to: a span of the request or event that produced
    /// it, so one trace runs across HTTP calls and event hops alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The entity whose events must stay in order (e.g. an order id): it picks the
    /// stream partition the event goes to, so one entity's events share a partition.
    /// Events caused by this one inherit it.
    #[serde(
        rename = "partitionkey",
        alias = "key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<String>,
    pub data: serde_json::Value,
}

/// The CloudEvents specification version an envelope follows: `1.0`, the only one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecVersion {
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
}

/// The media type of an envelope's `data`: `application/json`, the only one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentType {
    #[default]
    #[serde(rename = "application/json")]
    Json,
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
            specversion: SpecVersion::V1_0,
            id: Uuid::now_v7(),
            source: source.into(),
            event_type,
            occurred_at: Utc::now(),
            datacontenttype: ContentType::Json,
            version: 1,
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

/// A consumer's decoding `step` as `contracts::reads::check_consumer` calls it: fed an
/// envelope of each event type it reads holding `data`, `Err` with why it refused it.
/// For tests, behind the `contract-tests` feature.
#[cfg(feature = "contract-tests")]
pub fn decoding<T>(
    step: impl Fn(&Envelope) -> Result<T, crate::error::HandlerError>,
) -> impl Fn(&str, serde_json::Value) -> Result<(), String> {
    move |event_type, data| {
        let event = Envelope::new(event_type, "contract", &data).map_err(|e| e.to_string())?;
        step(&event).map(drop).map_err(|error| error.to_string())
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
        assert_eq!(json["correlationid"], "req-1");
        assert_eq!(json["causationid"], cause.id.to_string());
        assert_eq!(
            json["partitionkey"], "order-1",
            "the ordering key is inherited"
        );
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, effect);
    }

    /// The attribute names CloudEvents allows: lower-case ASCII letters and digits, at
    /// most 20 of them (`data` is the payload, not an attribute).
    fn is_cloudevents_attribute(name: &str) -> bool {
        name == "data"
            || (name.len() <= 20
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    }

    #[test]
    fn an_envelope_is_a_structured_cloudevent_the_sdk_reads_back() {
        use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};

        let parent = TraceParent::new_root();
        let cause = Envelope::new("order.created", "order", &serde_json::json!({}))
            .unwrap()
            .correlated("req-1")
            .keyed("order-1");
        let event = Envelope::new(
            "inventory.reserved",
            "inventory",
            &serde_json::json!({"n": 1}),
        )
        .unwrap()
        .caused_by(&cause);
        let event = Envelope {
            traceparent: Some(parent.to_string()),
            ..event
        };
        let json = serde_json::to_string(&event).unwrap();
        let members: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).unwrap();
        for name in members.keys() {
            assert!(
                is_cloudevents_attribute(name),
                "{name} is not a CloudEvents name"
            );
        }

        let read: Event = serde_json::from_str(&json).expect("the SDK reads it");
        let expected = EventBuilderV10::new()
            .id(event.id.to_string())
            .source("inventory")
            .ty("inventory.reserved")
            .time(event.occurred_at)
            .data("application/json", serde_json::json!({"n": 1}))
            .extension("version", 1_i64)
            .extension("correlationid", "req-1")
            .extension("causationid", cause.id.to_string())
            .extension("traceparent", parent.to_string())
            .extension("partitionkey", "order-1")
            .build()
            .unwrap();
        assert_eq!(read, expected);
        assert_eq!(read.datacontenttype(), Some("application/json"));
        assert_eq!(read.data(), Some(&Data::Json(serde_json::json!({"n": 1}))));
    }

    #[test]
    fn an_entry_in_the_envelope_shape_before_cloudevents_is_still_read() {
        let id = Uuid::now_v7();
        let cause = Uuid::now_v7();
        let old = serde_json::json!({
            "id": id,
            "type": "order.created",
            "version": 1,
            "source": "order",
            "occurred_at": "2026-12-01T10:00:00.5Z",
            "correlation_id": "req-9",
            "causation_id": cause,
            "key": "order-9",
            "data": {"order_id": "order-9"},
        });
        let read: Envelope = serde_json::from_value(old).unwrap();
        assert_eq!(read.specversion, SpecVersion::V1_0);
        assert_eq!(read.id, id);
        assert_eq!(read.event_type, "order.created");
        assert_eq!(
            read.occurred_at.to_rfc3339(),
            "2026-12-01T10:00:00.500+00:00"
        );
        assert_eq!(read.correlation_id.as_deref(), Some("req-9"));
        assert_eq!(read.causation_id, Some(cause));
        assert_eq!(read.key.as_deref(), Some("order-9"));
        assert_eq!(read.data["order_id"], "order-9");
        // The old shape's absent members were written as null.
        let nulls = serde_json::json!({
            "id": id, "type": "x", "version": 1, "source": "order",
            "occurred_at": "2026-12-01T10:00:00Z", "correlation_id": null,
            "causation_id": null, "data": {},
        });
        let read: Envelope = serde_json::from_value(nulls).unwrap();
        assert_eq!(
            (read.correlation_id, read.causation_id, read.key),
            (None, None, None)
        );
    }

    #[test]
    fn an_envelope_of_another_cloudevents_version_or_media_type_is_refused() {
        let event = Envelope::new("x", "y", &serde_json::json!({})).unwrap();
        let mut json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["datacontenttype"], "application/json");
        json["specversion"] = "0.3".into();
        assert!(serde_json::from_value::<Envelope>(json.clone()).is_err());
        json["specversion"] = "1.0".into();
        json["datacontenttype"] = "text/plain".into();
        assert!(serde_json::from_value::<Envelope>(json).is_err());
    }
}
