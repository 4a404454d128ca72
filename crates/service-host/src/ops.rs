//! The `/ops` routes every service serves, behind its service key, for an admin the
//! gateway vouches for. What they answer with, and the client that reads them, are
//! [`contracts::ops`]'s; the data is the bus's ([`event_bus::ops`]) and the client's
//! ([`service_client::breakers`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use contracts::ops::{Action, DeadLetterRef, JourneyStep, MinuteCount, ServiceReport};
use event_bus::ops::Sources;
use futures::future::BoxFuture;
use serde::Deserialize;
use service_kit::internal_auth::Caller;
use service_kit::json::Json;
use service_kit::ops::Readiness;
use service_kit::problem::{FieldError, Problem};

/// A service's own milestones for a key since a time.
pub type Milestones = Arc<
    dyn Fn(String, DateTime<Utc>) -> BoxFuture<'static, anyhow::Result<Vec<JourneyStep>>>
        + Send
        + Sync,
>;

/// What a service's ops routes read.
#[derive(Clone)]
pub(crate) struct OpsApi {
    pub service: &'static str,
    pub version: &'static str,
    pub sources: Sources,
    pub readiness: Readiness,
    pub milestones: Option<Milestones>,
}

/// The `/ops` routes, merged into the service's router behind its service key.
pub(crate) fn router(api: OpsApi) -> Router {
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
