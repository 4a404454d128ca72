//! The ops API every service serves under `/ops` (behind its service key, for an admin
//! the gateway vouches for): the shapes it answers with, and the client the gateway's
//! console reads it with. The routes are `service_host::ops`'s.
//!
//! - `GET /ops/report`: [`ServiceReport`]: version, readiness, breakers per peer,
//!   outbox backlog, the group's streams, its dead letters.
//! - `GET /ops/journey?key=&since=`: [`JourneyStep`]s: the events about one key (an
//!   order id) this service committed, plus its own milestones (the notification
//!   service's emails).
//! - `GET /ops/throughput?since=`: [`MinuteCount`]s, events published per stream, type
//!   and minute.
//! - `POST /ops/dead-letters/{replay|discard}` [`DeadLetterRef`]: 204, or 404 when
//!   there is no such dead letter of this service's. Audited in the logs with the
//!   admin's id.
//!
//! The event bus fills the stream, outbox and dead-letter shapes ([`StreamReport`],
//! [`Backlog`], [`DeadLetter`]); the client fills the breakers
//! ([`service_client::breakers`]).

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use service_client::{Client, Error, PeerBreaker};
use service_kit::internal_auth::Caller;
use service_kit::problem::{FieldError, Problem};

/// One service as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: String,
    pub version: String,
    pub ready: bool,
    /// The dependencies that did not answer.
    pub failing: Vec<String>,
    pub breakers: Vec<PeerBreaker>,
    pub outbox: Option<Backlog>,
    pub streams: Vec<StreamReport>,
    pub dead_letters: Vec<DeadLetter>,
}

/// One step of a key's journey: an event a service committed, or a milestone of its
/// own (an email sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyStep {
    /// The event type (`order.created`), or the milestone (`email.sent`).
    pub step: String,
    pub service: String,
    pub at: DateTime<Utc>,
    pub event_id: Option<uuid::Uuid>,
    pub traceparent: Option<String>,
}

/// One consumer group on one stream (a partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    pub stream: String,
    pub group: String,
    /// Entries in the stream now (it is capped, so not all it ever had).
    pub length: u64,
    /// Entries ever added to the stream.
    pub entries_added: u64,
    /// Entries the group has not been given yet (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Entries given to the group's consumers and not acknowledged.
    pub pending: u64,
    /// Age of the oldest pending entry, from its id's time.
    pub oldest_pending_age_ms: Option<u64>,
    pub consumers: Vec<ConsumerReport>,
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerReport {
    pub name: String,
    pub pending: u64,
    /// Since the consumer last read or claimed.
    pub idle_ms: u64,
}

/// What the outbox holds that is not published yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    pub events: i64,
    pub oldest_age_ms: Option<i64>,
}

/// Events of one type published to one stream in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteCount {
    pub stream: String,
    pub event_type: String,
    pub minute: DateTime<Utc>,
    pub events: i64,
}

/// One dead-lettered entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    pub envelope: String,
    pub error: String,
    pub group: String,
    pub stream: String,
    pub original_id: String,
    /// Deliveries before the group gave up (0 when not recorded).
    pub deliveries: u64,
}

/// What an operator may do with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Append it to its stream again, then remove it.
    Replay,
    /// Remove it.
    Discard,
}

impl Action {
    /// The action named `name` (`replay` or `discard`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "replay" => Some(Action::Replay),
            "discard" => Some(Action::Discard),
            _ => None,
        }
    }

    /// `replay` or `discard`, as the API and the audit log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replay => "replay",
            Action::Discard => "discard",
        }
    }
}

/// The dead letter an action names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterRef {
    pub stream: String,
    pub id: String,
}

impl DeadLetterRef {
    /// 422 unless `id` is a stream entry id (Redis would refuse anything else).
    pub fn check(&self) -> Result<(), Problem> {
        if is_entry_id(&self.id) {
            Ok(())
        } else {
            Err(Problem::validation(vec![FieldError::new(
                "id",
                "must be a stream entry id like 1700000000000-0",
            )]))
        }
    }
}

/// A stream entry id: `<milliseconds>-<sequence>`.
pub fn is_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq].iter().all(|part| {
            !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// Reads one service's ops API.
#[derive(Debug, Clone)]
pub struct OpsClient {
    client: Client,
}

impl OpsClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The service's name as its client knows it.
    pub fn service(&self) -> &'static str {
        self.client.peer().name
    }

    pub async fn report(&self, caller: &Caller) -> Result<ServiceReport, Error> {
        self.client
            .get("/ops/report")
            .on_behalf_of(caller)
            .send_json()
            .await
    }

    pub async fn journey(
        &self,
        key: &str,
        since: DateTime<Utc>,
        caller: &Caller,
    ) -> Result<Vec<JourneyStep>, Error> {
        let path = format!(
            "/ops/journey?key={}&since={}",
            query_value(key),
            query_value(&rfc3339(since))
        );
        self.client
            .get(&path)
            .on_behalf_of(caller)
            .send_json()
            .await
    }

    pub async fn throughput(
        &self,
        since: DateTime<Utc>,
        caller: &Caller,
    ) -> Result<Vec<MinuteCount>, Error> {
        let path = format!("/ops/throughput?since={}", query_value(&rfc3339(since)));
        self.client
            .get(&path)
            .on_behalf_of(caller)
            .send_json()
            .await
    }

    /// `Ok(false)` when the service has no such dead letter.
    pub async fn act_on_dead_letter(
        &self,
        letter: &DeadLetterRef,
        action: Action,
        caller: &Caller,
    ) -> Result<bool, Error> {
        let path = format!("/ops/dead-letters/{}", action.as_str());
        let sent = self
            .client
            .post(&path)
            .on_behalf_of(caller)
            .json(letter)
            .send()
            .await;
        crate::none_if_not_found(sent).map(|answer| answer.is_some())
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `value` percent-encoded for a query string (RFC 3986 unreserved characters kept).
fn query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_milliseconds_dash_sequence() {
        for id in ["1700000000000-0", "0-1"] {
            assert!(is_entry_id(id), "{id}");
        }
        for id in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "a-1",
            "1-1-1",
            "+",
            "1 -1",
            "123456789012345678901-0",
        ] {
            assert!(!is_entry_id(id), "{id}");
        }
    }

    #[test]
    fn query_values_keep_only_unreserved_characters() {
        assert_eq!(
            query_value("2026-12-04T19:40:00.123Z"),
            "2026-12-04T19%3A40%3A00.123Z"
        );
        assert_eq!(query_value("a&b=c d"), "a%26b%3Dc%20d");
    }
}
