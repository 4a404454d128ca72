//! The API gateway: the one door to the public API.
//!
//! Every `/api/*` request has its path made canonical, is routed by a fixed table
//! (never a free-form service name), has its bearer token verified against the user
//! service's JWKS (except register, login and the JWKS), is counted against an exact
//! per-user (or per-IP) limit shared by every replica through Redis, and is streamed
//! to its service with the caller's identity and that service's key; `/api/dashboard`
//! is assembled from four services at once.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires Redis, the verifier, the limiter, the route table and the
//!   dashboard's clients into a [`service_kit::server::Server`] that serves on one
//!   worker thread per core ([`serve`]), each with its own upstream connection pool
//!   ([`Worker`]).
//! - [`serve`]: the HTTP/1.1 server, a service per connection, worker threads, and the
//!   kit's middleware fused into one service ([`serve::stack`]).
//! - [`routes`]: the route table, as data: each prefix's service by name, the
//!   gateway's own endpoints, what is public.
//! - [`state`]: what the handlers reach, shared and per worker; [`upstream`]: the
//!   services behind the gateway; [`dispatch`]: ops paths to their router, everything
//!   else to the proxy.
//! - [`connections`]: each worker's HTTP/1.1 connections to the services and the
//!   exchanges on them.
//! - [`path`]: canonical paths. [`proxy`]: the handler and header hygiene.
//! - [`auth`]: token verification and the JWKS cache. [`ratelimit`]: the limiter.
//! - [`endpoints`]: the gateway's own, on an axum `Router` behind the proxy's front
//!   door: [`dashboard`], the aggregated view; [`console`], the ops console's
//!   `/api/ops`; the OpenAPI document.

pub mod auth;
pub mod config;
pub mod connections;
pub mod console;
pub mod dashboard;
pub mod dispatch;
pub mod endpoints;
pub mod path;
pub mod problems;
pub mod proxy;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod state;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, Method};
use contracts::ops::OpsClient;
use service_client::Client;
use service_kit::ops::Readiness;
use service_kit::server::Server;
use tower::{Layer, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Verifier;
use crate::config::Config;
use crate::console::Console;
use crate::dashboard::Backends;
use crate::dispatch::Dispatch;
use crate::ratelimit::RateLimiter;
use crate::serve::stack::StackLayer;
use crate::upstream::Upstream;

pub use crate::state::{AppState, Gateway, Worker};

/// The port the gateway listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// How often the JWKS is fetched again even without an unknown `kid`.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Builds the gateway.
pub struct Application;

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let settings = &config.client;
        let peers = config.services(settings);
        // Each service's place in the list is its index in every worker's connections.
        let upstreams = peers
            .iter()
            .enumerate()
            .map(|(index, peer)| Upstream::new(peer, index).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes = routes::resolve(&upstreams)?;
        let upstream_count = upstreams.len();
        let peer = |name: &str| {
            peers
                .iter()
                .find(|peer| peer.name == name)
                .cloned()
                .with_context(|| format!("the {name} service is no peer"))
        };
        let client = |name: &str| anyhow::Ok(Client::new("gateway", peer(name)?)?);

        let redis = config.redis.connect().await?;
        service_kit::metrics::handle();
        let verifier = Verifier::new(client("user")?, &config.jwt_issuer, &config.jwt_audience);
        if let Err(error) = verifier.refresh().await {
            tracing::warn!(error = format!("{error:#}"), "no JWKS yet; will retry");
        }
        let backends = Backends {
            user: client("user")?,
            order: client("order")?,
            payment: client("payment")?,
            notification: client("notification")?,
            timeout: Duration::from_millis(config.dashboard_timeout_ms),
        };
        let ready_verifier = verifier.clone();
        let readiness = Readiness::new()
            .with_redis(redis)
            .with_check("jwks", move || {
                let verifier = ready_verifier.clone();
                async move {
                    if verifier.has_keys().await {
                        return Ok(());
                    }
                    verifier
                        .refresh()
                        .await
                        .map(drop)
                        .context("the user service's JWKS could not be fetched")
                }
            });
        let console = Console {
            services: peers
                .iter()
                .map(|peer| Client::new("gateway", peer.clone()).map(OpsClient::new))
                .collect::<Result<_, _>>()?,
            orders: backends.order.clone(),
            readiness: readiness.clone(),
            trace_url: Some(config.trace_ui_url.clone()).filter(|url| !url.is_empty()),
            timeout: Duration::from_millis(config.dashboard_timeout_ms),
        };
        let state = Arc::new(Gateway {
            routes,
            verifier: verifier.clone(),
            limiter: RateLimiter::new(
                config.redis.client()?,
                &config.rate_limit_key_prefix,
                config.rate_limit_per_minute,
            ),
            trusted_proxies: config.trusted_proxies.0.clone(),
            backends,
            console: Arc::new(console),
            limits: connections::Limits {
                connect_timeout: Duration::from_millis(settings.http_client_connect_timeout_ms),
                max_open: connections::MAX_OPEN,
            },
        });

        let endpoints = endpoints::router(state.clone());
        let cors = cors(&config.cors_origins)?;
        let stack = StackLayer {
            request_timeout: config.http.request_timeout(),
        };
        // On each serving thread: the worker's state and ops router; then for each
        // connection, its service.
        let make = move || {
            let worker = Arc::new(Worker {
                gateway: state.clone(),
                verifier: state.verifier.for_worker(),
                connections: connections::Connections::new(upstream_count, state.limits),
                limiter: state.limiter.for_worker(),
                endpoints: endpoints.clone(),
            });
            let ops = service_kit::middleware::prepare(service_kit::ops::router(readiness.clone()));
            let cors = cors.clone();
            move |peer| {
                let dispatch = Dispatch {
                    worker: worker.clone(),
                    ops: ops.clone(),
                    peer,
                };
                stack.layer(
                    ServiceBuilder::new()
                        .option_layer(cors.clone())
                        .service(dispatch),
                )
            }
        };
        let listener = Server::bind(config.http.listen_addr(DEFAULT_PORT)).await?;
        let service = serve::per_connection(
            listener,
            config.workers(),
            make,
            config.http.shutdown_timeout(),
        );
        service.spawn_task("jwks refresh", move |cancel| async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(JWKS_REFRESH) => {}
                }
                if let Err(error) = verifier.refresh().await {
                    tracing::warn!(error = format!("{error:#}"), "JWKS refresh failed");
                }
            }
        });
        Ok(service)
    }
}

/// CORS for the configured origins; `None` when there are none. An entry that is not
/// an origin (`scheme://host[:port]`, as browsers send it: no path, no trailing slash)
/// stops the gateway with a message, rather than never matching.
fn cors(origins: &str) -> anyhow::Result<Option<CorsLayer>> {
    let origins = origins
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|origin| {
            origin_header(origin).ok_or_else(|| {
                anyhow::anyhow!(
                    "CORS_ORIGINS: {origin:?} is not an origin (scheme://host[:port], \
                     no path or trailing slash)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<HeaderValue>>>()?;
    if origins.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                HeaderName::from_static("authorization"),
                HeaderName::from_static("content-type"),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
                HeaderName::from_static("retry-after"),
                HeaderName::from_static("x-request-id"),
            ]),
    ))
}

/// `origin` as the `Origin` header value a browser sends for it, if it is one.
fn origin_header(origin: &str) -> Option<HeaderValue> {
    let uri: axum::http::Uri = origin.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    let bare = matches!(scheme, "http" | "https")
        && !authority.as_str().contains('@')
        && uri.path() == "/"
        && uri.query().is_none()
        && !origin.ends_with('/');
    if !bare {
        return None;
    }
    HeaderValue::from_str(origin).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_bare_origins_or_the_gateway_does_not_start() {
        for origin in ["https://app.example", "http://localhost:3000"] {
            assert!(origin_header(origin).is_some(), "{origin}");
        }
        for not_origin in [
            "https://app.example/",
            "https://app.example/path",
            "https://app.example?x=1",
            "app.example",
            "ftp://app.example",
            "https://user@app.example",
            "*",
        ] {
            assert!(origin_header(not_origin).is_none(), "{not_origin}");
        }
        assert!(
            matches!(cors(" , "), Ok(None)),
            "empty entries are no origins"
        );
        assert!(matches!(
            cors("https://a.example, http://localhost:3000"),
            Ok(Some(_))
        ));
        let refused = cors("https://a.example, https://b.example/").err().unwrap();
        assert!(
            refused.to_string().contains("\"https://b.example/\""),
            "{refused}"
        );
    }
}
