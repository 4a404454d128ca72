//! An entry read from a stream, its envelope decoded (or why it could not be).

use redis::Value;
use redis::streams::StreamId;

use crate::envelope::{ENVELOPE_FIELD, Envelope};

/// An entry read from a stream.
pub(super) struct Entry {
    pub(super) stream: String,
    pub(super) id: String,
    pub(super) envelope: Result<Envelope, String>,
}

pub(super) fn to_entry(stream: &str, entry: StreamId) -> Entry {
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
