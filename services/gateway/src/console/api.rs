//! `/api/ops/*`, for admins only:
//!
//! - `GET /api/ops/services`: `{data: [ServiceReport]}`, the gateway's and each
//!   service's, asked at once; a service that does not answer is listed not ready.
//! - `GET /api/ops/orders/{id}/journey`: the order's events across services in time
//!   order, each with the time since the one before, and its trace id.
//! - `GET /api/ops/throughput.svg`: events per minute per stream, and orders per
//!   minute, over the last hour.
//! - `POST /api/ops/dead-letters/{replay|discard}` `{service, stream, id}`: 204, 404
//!   when the service has no such dead letter. Audited in the gateway's log too.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use contracts::ops::{Action, DeadLetterRef, JourneyStep, MinuteCount, ServiceReport};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::Problem;
use service_kit::internal_auth::Caller;
use service_kit::json::Json;
use uuid::Uuid;

use super::Console;
use crate::auth::{Invalid, Signed, unauthorized};
use crate::problems::{method_not_allowed, not_found};

/// The `/api/ops` routes (nested there by [`crate::endpoints::router`]), every one
/// behind [`admins_only`], the unknown ones too.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/services", get(services))
        .route("/throughput.svg", get(throughput))
        .route("/orders/{id}/journey", get(journey))
        .route("/dead-letters/{action}", post(act_on_dead_letter))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(admins_only))
        .with_state(console)
}

/// Lets an admin's request on; anyone else's is answered 401 or 403.
async fn admins_only(request: Request, next: Next) -> Response {
    match request.extensions().get::<Caller>() {
        None => unauthorized(&Invalid::Missing),
        Some(caller) if !caller.is_admin() => {
            Problem::forbidden("The ops API is for admins only.").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// The gateway's own report: its readiness and its clients' breakers.
async fn own_report(console: &Console) -> ServiceReport {
    let failing = console.readiness.failing().await;
    ServiceReport {
        service: "gateway".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ready: failing.is_empty(),
        failing: failing.into_iter().map(str::to_owned).collect(),
        breakers: service_client::breakers(),
        outbox: None,
        streams: Vec::new(),
        dead_letters: Vec::new(),
    }
}

async fn services(State(console): State<Arc<Console>>, Signed(caller): Signed) -> Response {
    let (console, caller) = (&*console, &caller);
    let asked = console.services.iter().map(|ops| async move {
        let report = tokio::time::timeout(console.timeout, ops.report(caller)).await;
        match report {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => unreachable(ops.service(), error.to_string()),
            Err(_) => unreachable(ops.service(), "no answer in time".to_owned()),
        }
    });
    let (own, mut reports) = tokio::join!(own_report(console), join_all(asked));
    reports.insert(0, own);
    Json(json!({ "data": reports })).into_response()
}

fn unreachable(service: &str, why: String) -> ServiceReport {
    ServiceReport {
        service: service.to_owned(),
        version: "unknown".to_owned(),
        ready: false,
        failing: vec![format!("unreachable ({why})")],
        breakers: Vec::new(),
        outbox: None,
        streams: Vec::new(),
        dead_letters: Vec::new(),
    }
}

/// One step as the console shows it.
#[derive(Debug, Serialize)]
struct Step {
    #[serde(flatten)]
    step: JourneyStep,
    /// Since the step before, the hop's latency.
    since_previous_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct OrderTimes {
    created_at: DateTime<Utc>,
}

async fn journey(
    State(console): State<Arc<Console>>,
    Signed(caller): Signed,
    Path(id): Path<String>,
) -> Response {
    let (console, caller) = (&*console, &caller);
    let Ok(order_id) = Uuid::parse_str(&id) else {
        return Problem::not_found("No such order.").into_response();
    };
    let order = console
        .orders
        .get(&format!("/orders/{order_id}"))
        .on_behalf_of(caller)
        .timeout(console.timeout)
        .send_json::<OrderTimes>()
        .await;
    let order = match contracts::none_if_not_found(order) {
        Ok(Some(order)) => order,
        Ok(None) => return Problem::not_found("No such order.").into_response(),
        Err(error) => {
            tracing::warn!(%error, "the order service did not answer for a journey");
            return Problem::unavailable("The order service did not answer.").into_response();
        }
    };
    // The events of an order come after it was created; a minute's slack covers
    // clocks that disagree.
    let since = order.created_at - chrono::Duration::minutes(1);
    let key = order_id.to_string();
    let asked = console.services.iter().map(|ops| {
        let key = key.clone();
        async move {
            match tokio::time::timeout(console.timeout, ops.journey(&key, since, caller)).await {
                Ok(Ok(steps)) => steps,
                Ok(Err(error)) => {
                    tracing::warn!(service = ops.service(), %error, "no journey steps");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            }
        }
    });
    let mut steps: Vec<JourneyStep> = join_all(asked).await.into_iter().flatten().collect();
    steps.sort_by_key(|step| step.at);
    let trace_id = steps.iter().find_map(|step| {
        step.traceparent
            .as_deref()?
            .split('-')
            .nth(1)
            .map(str::to_owned)
    });
    let trace_url = match (&console.trace_url, &trace_id) {
        (Some(base), Some(id)) => Some(format!("{}/trace/{id}", base.trim_end_matches('/'))),
        _ => None,
    };
    let mut previous: Option<DateTime<Utc>> = None;
    let steps: Vec<Step> = steps
        .into_iter()
        .map(|step| {
            let since_previous_ms = previous.map(|at| (step.at - at).num_milliseconds());
            previous = Some(step.at);
            Step {
                step,
                since_previous_ms,
            }
        })
        .collect();
    Json(json!({
        "order_id": order_id,
        "trace_id": trace_id,
        "trace_url": trace_url,
        "steps": steps,
    }))
    .into_response()
}

async fn throughput(State(console): State<Arc<Console>>, Signed(caller): Signed) -> Response {
    let (console, caller) = (&*console, &caller);
    let now = Utc::now();
    let since = now - chrono::Duration::hours(1);
    let asked = console.services.iter().map(|ops| async move {
        match tokio::time::timeout(console.timeout, ops.throughput(since, caller)).await {
            Ok(Ok(counts)) => counts,
            _ => Vec::new(),
        }
    });
    let counts: Vec<MinuteCount> = join_all(asked).await.into_iter().flatten().collect();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        super::chart::throughput(&counts, now),
    )
        .into_response()
}

/// Which service's dead letter, and which one.
#[derive(Debug, Deserialize)]
struct ActionBody {
    service: String,
    stream: String,
    id: String,
}

async fn act_on_dead_letter(
    State(console): State<Arc<Console>>,
    Signed(caller): Signed,
    Path(action): Path<String>,
    request: Request,
) -> Response {
    let (console, caller) = (&*console, &caller);
    let Some(action) = Action::named(&action) else {
        return Problem::not_found("No such action: replay or discard.").into_response();
    };
    let body = match Json::<ActionBody>::from_request(request, &()).await {
        Ok(Json(body)) => body,
        Err(problem) => return problem.into_response(),
    };
    let Some(ops) = console
        .services
        .iter()
        .find(|ops| ops.service() == body.service)
    else {
        return Problem::not_found("No such service.").into_response();
    };
    let letter = DeadLetterRef {
        stream: body.stream,
        id: body.id,
    };
    // Checked here too: the service's 422 would reach the client as a failed call.
    if let Err(problem) = letter.check() {
        return problem.into_response();
    }
    match ops.act_on_dead_letter(&letter, action, caller).await {
        Ok(true) => {
            tracing::info!(
                target: "audit",
                admin = %caller.user_id,
                action = action.as_str(),
                service = ops.service(),
                stream = %letter.stream,
                dead_letter = %letter.id,
                "dead-letter action",
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => Problem::not_found("No such dead letter.").into_response(),
        Err(error) => {
            tracing::warn!(%error, "dead-letter action failed");
            Problem::unavailable("The service did not answer.").into_response()
        }
    }
}
