//! Operations routes, served by every service and the gateway:
//!
//! - `GET /healthz`: the process is alive (no dependency is asked).
//! - `GET /readyz`: every dependency the service declared answers; else 503 naming the
//!   failing ones, so an orchestrator stops sending traffic until they are back.
//! - `GET /metrics`: Prometheus text format.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use serde_json::{Value, json};

use crate::problem::Problem;

/// How long one dependency gets to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a dependency did not answer: its client's error, cause chain kept.
pub type CheckError = Box<dyn std::error::Error + Send + Sync>;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), CheckError>> + Send + Sync>;

/// The dependencies `/readyz` asks, by name.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check: `name` appears in the 503 body when `check` fails or is too slow,
    /// and its error (with its causes) in the log.
    pub fn with_check<F, Fut, E>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<CheckError>,
    {
        self.checks.push((
            name,
            Arc::new(move || check().map(|r| r.map_err(Into::into)).boxed()),
        ));
        self
    }

    /// Postgres answers `SELECT 1`.
    pub fn with_postgres(self, pool: sqlx::PgPool) -> Self {
        self.with_check("postgres", move || {
            let pool = pool.clone();
            async move {
                sqlx::query!(r#"SELECT 1 AS "one""#)
                    .fetch_one(&pool)
                    .await
                    .map(drop)
            }
        })
    }

    /// Redis answers `PING`.
    pub fn with_redis(self, redis: crate::redis::Connection) -> Self {
        self.with_check("redis", move || {
            let mut redis = redis.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut redis)
                    .await
                    .map(drop)
            }
        })
    }

    /// Runs every check at once; returns the names of those that failed.
    pub async fn failing(&self) -> Vec<&'static str> {
        let results = join_all(self.checks.iter().map(|(name, check)| {
            let check = check();
            async move {
                let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
                match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => {
                        let error = crate::telemetry::causes(error.as_ref());
                        tracing::warn!(dependency = name, error, "readiness check failed");
                        Some(*name)
                    }
                    Err(_) => {
                        tracing::warn!(dependency = name, "readiness check timed out");
                        Some(*name)
                    }
                }
            }
        }))
        .await;
        results.into_iter().flatten().collect()
    }
}

/// The ops routes, to be merged into a service's router.
pub fn router(readiness: Readiness) -> Router {
    let [health, ready, metrics_path] = PATHS;
    Router::new()
        .route(health, get(healthz))
        .route(ready, get(readyz))
        .route(metrics_path, get(metrics))
        .with_state(readiness)
}

/// The paths of [`router`]'s routes, for a service that routes by hand.
pub const PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let failing = readiness.failing().await;
    // What the last probe found, for alerting: 1 ready, 0 not (the kubelet and compose's
    // health check probe every few seconds, so the gauge stays current).
    metrics::gauge!("service_ready").set(if failing.is_empty() { 1.0 } else { 0.0 });
    if failing.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        Problem::unavailable(format!("Not ready: {} unavailable.", failing.join(", ")))
            .with("failing", json!(failing))
            .into_response()
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
}
