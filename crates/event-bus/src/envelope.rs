//! The envelope every event travels in.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{id, type, version, source, occurred_at, correlation_id, causation_id, data}`.
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
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new event of `event_type` from `source` carrying `data`.
    pub fn new(
        event_type: impl Into<String>,
        source: impl Into<String>,
        data: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            version: 1,
            source: source.into(),
            occurred_at: Utc::now(),
            correlation_id: None,
            causation_id: None,
            data: serde_json::to_value(data)?,
        })
    }

    /// Sets the correlation id.
    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Marks this event as caused by `cause`, inheriting its correlation id.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causation_id = Some(cause.id);
        if self.correlation_id.is_none() {
            self.correlation_id.clone_from(&cause.correlation_id);
        }
        self
    }

    /// The payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_with_type_as_the_member_name() {
        let cause = Envelope::new("order.created", "order", &serde_json::json!({"n": 1}))
            .unwrap()
            .correlated("req-1");
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
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, effect);
    }
}
