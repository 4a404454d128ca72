//! The ops API every service serves under `/ops` (behind its service key, for an admin
//! the gateway vouches for), and the client the gateway's console reads it with.
//! One file: the routes and the client of one HTTP API, with the shapes they share,
//! side by side so that neither end changes without the other.
//!
//! - `GET /ops/report`: [`ServiceReport`]: version, readiness, breakers per peer,
//!   outbox backlog, the group's streams, its dead letters.
//! - `GET /ops/journey?key=&since=`: [`JourneyStep`]s: the events about one key (an
//!   order id) this service committed, plus its own milestones (the notification
//!   service's emails).
//! - `GET /ops/throughput?since=`: events published per stream, type and minute.
//! - `POST /ops/dead-letters/{replay|discard}` `{stream, id}`: 204, or 404 when there
//!   is no such dead letter of this service's. Audited in the logs with the admin's id.
//!
//! The data is the bus's ([`event_bus::ops`]) and the client's
//! ([`service_client::breakers`]); this module is only their HTTP shape, on both ends,
//! so the two cannot drift apart.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
pub use event_bus::dead_letters::{Action, DeadLetter};
pub use event_bus::ops::{Backlog, ConsumerReport, MinuteCount, Sources, StreamReport};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use service_client::{Client, Error, PeerBreaker};
use service_kit::internal_auth::Caller;
use service_kit::json::Json;
use service_kit::ops::Readiness;
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

/// A service's own milestones for a key since a time.
pub type Milestones = Arc<
    dyn Fn(String, DateTime<Utc>) -> BoxFuture<'static, anyhow::Result<Vec<JourneyStep>>>
        + Send
        + Sync,
>;

/// What a service's ops routes read.
#[derive(Clone)]
pub struct OpsApi {
    pub service: &'static str,
    pub version: &'static str,
    pub sources: Sources,
    pub readiness: Readiness,
    pub milestones: Option<Milestones>,
}

impl OpsApi {
    pub fn new(
        service: &'static str,
        version: &'static str,
        sources: Sources,
        readiness: Readiness,
    ) -> Self {
        Self {
            service,
            version,
            sources,
            readiness,
            milestones: None,
        }
    }

    /// The ops API of a service standing on `base` and reading `subscription`.
    pub fn of(
        service: &'static str,
        version: &'static str,
        base: &event_bus::Foundation,
        subscription: Option<&event_bus::Subscription<'_>>,
    ) -> Self {
        Self::new(
            service,
            version,
            base.ops_sources(subscription),
            base.readiness(),
        )
    }

    /// Adds the service's own milestones to the journeys it reports.
    pub fn with_milestones(mut self, milestones: Milestones) -> Self {
        self.milestones = Some(milestones);
        self
    }
}

/// The `/ops` routes; merge them into the service's router, behind its service key.
pub fn router(api: OpsApi) -> Router {
    Router::new()
        .route("/ops/report", get(report))
        .route("/ops/journey", get(journey))
        .route("/ops/throughput", get(throughput))
        .route("/ops/dead-letters/{action}", post(act_on_dead_letter))
        .with_state(api)
}

fn admin_only(caller: &Caller) -> Result<(), Problem> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden("Only an admin may read the ops API."))
    }
}

/// A 500 whose logged cause says what was being done.
fn failed<E: Into<anyhow::Error>>(what: &'static str) -> impl FnOnce(E) -> Problem {
    move |error| Problem::internal(error.into().context(what))
}

async fn report(State(api): State<OpsApi>, caller: Caller) -> Result<Json<ServiceReport>, Problem> {
    admin_only(&caller)?;
    let (failing, outbox, streams, dead_letters) = tokio::join!(
        api.readiness.failing(),
        event_bus::ops::outbox_backlog(&api.sources.pool),
        api.sources.streams(),
        api.sources.dead_letters(),
    );
    let read = |part: &str, failure: Option<String>| {
        if let Some(error) = failure {
            tracing::warn!(
                part,
                error,
                "the ops report leaves out what it could not read"
            );
        }
    };
    read("outbox", outbox.as_ref().err().map(ToString::to_string));
    read("streams", streams.as_ref().err().map(ToString::to_string));
    read(
        "dead letters",
        dead_letters.as_ref().err().map(ToString::to_string),
    );
    Ok(Json(ServiceReport {
        service: api.service.to_owned(),
        version: api.version.to_owned(),
        ready: failing.is_empty(),
        failing: failing.into_iter().map(str::to_owned).collect(),
        breakers: service_client::breakers(),
        // A report names what it could not read rather than failing whole: the
        // console is most needed when something is down.
        outbox: outbox.ok(),
        streams: streams.unwrap_or_default(),
        dead_letters: dead_letters.unwrap_or_default(),
    }))
}

#[derive(Debug, Deserialize)]
struct JourneyQuery {
    key: String,
    since: DateTime<Utc>,
}

async fn journey(
    State(api): State<OpsApi>,
    caller: Caller,
    Query(query): Query<JourneyQuery>,
) -> Result<Json<Vec<JourneyStep>>, Problem> {
    admin_only(&caller)?;
    if query.key.is_empty() || query.key.len() > 128 {
        return Err(Problem::validation(vec![FieldError::new(
            "key",
            "must be 1 to 128 characters",
        )]));
    }
    let published = event_bus::ops::published_with_key(&api.sources.pool, &query.key, query.since)
        .await
        .map_err(failed("reading the outbox"))?;
    let mut steps: Vec<JourneyStep> = published
        .into_iter()
        .map(|event| JourneyStep {
            step: event.event_type,
            service: event.source,
            at: event.occurred_at,
            event_id: Some(event.id),
            traceparent: event.traceparent,
        })
        .collect();
    if let Some(milestones) = &api.milestones {
        steps.extend(
            milestones(query.key, query.since)
                .await
                .map_err(failed("reading the milestones"))?,
        );
    }
    steps.sort_by_key(|step| step.at);
    Ok(Json(steps))
}

#[derive(Debug, Deserialize)]
struct ThroughputQuery {
    since: DateTime<Utc>,
}

async fn throughput(
    State(api): State<OpsApi>,
    caller: Caller,
    Query(query): Query<ThroughputQuery>,
) -> Result<Json<Vec<MinuteCount>>, Problem> {
    admin_only(&caller)?;
    event_bus::ops::published_per_minute(&api.sources.pool, query.since)
        .await
        .map(Json)
        .map_err(failed("counting the published events"))
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

async fn act_on_dead_letter(
    State(api): State<OpsApi>,
    caller: Caller,
    Path(action): Path<String>,
    Json(letter): Json<DeadLetterRef>,
) -> Result<Response, Problem> {
    admin_only(&caller)?;
    let action = Action::named(&action)
        .ok_or_else(|| Problem::not_found("No such action: replay or discard."))?;
    letter.check()?;
    let done = api
        .sources
        .act_on_dead_letter(&letter.stream, &letter.id, action)
        .await
        .map_err(failed("acting on the dead letter"))?;
    if !done {
        return Err(Problem::not_found("No such dead letter."));
    }
    tracing::info!(
        target: "audit",
        admin = %caller.user_id,
        action = action.as_str(),
        stream = %letter.stream,
        dead_letter = %letter.id,
        "dead letter {}",
        if action == Action::Replay { "replayed" } else { "discarded" },
    );
    Ok(StatusCode::NO_CONTENT.into_response())
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

/// `value` percent-encoded for a query string (RFC 3986 unreserved characters kept).
fn query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
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
