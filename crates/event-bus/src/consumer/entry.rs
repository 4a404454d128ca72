//! An entry read from a stream, its envelope decoded (or why it could not be).

use redis::Value;
use redis::streams::StreamId;

use crate::envelope::{ENVELOPE_FIELD, Envelope};

/// An entry read from a stream.
pub(super) struct Entry {
    pub(super) stream: String,
    pub(super) id: String,
    pub(super) envelope: Result<Envelope, Unreadable>,
}

/// Why an entry's envelope could not be read: the entry is dead-lettered with this as
/// its text.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreadable {
    /// The field is not an envelope; `raw` is what it held.
    #[error("unreadable envelope: {error}: {raw}")]
    Json {
        error: serde_json::Error,
        raw: String,
    },
    /// The field is not a string (`value` as Redis gave it).
    #[error("unexpected envelope value: {value}")]
    NotText { value: String },
    #[error("entry has no envelope field")]
    Missing,
}

pub(super) fn to_entry(stream: &str, entry: StreamId) -> Entry {
    let envelope = match entry.map.get(ENVELOPE_FIELD) {
        Some(Value::BulkString(bytes)) => {
            serde_json::from_slice::<Envelope>(bytes).map_err(|error| Unreadable::Json {
                error,
                raw: String::from_utf8_lossy(bytes).into_owned(),
            })
        }
        Some(other) => Err(Unreadable::NotText {
            value: format!("{other:?}"),
        }),
        None => Err(Unreadable::Missing),
    };
    Entry {
        stream: stream.to_owned(),
        id: entry.id,
        envelope,
    }
}
