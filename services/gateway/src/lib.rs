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
//!   dashboard's clients into a [`service_kit::server::Service`].
//! - [`path`]: canonical paths. [`proxy`]: the handler and header hygiene.
//! - [`auth`]: token verification and the JWKS cache. [`ratelimit`]: the limiter.
//! - [`dashboard`]: the aggregated view.

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod path;
pub mod proxy;
pub mod ratelimit;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method};
use service_client::{CircuitBreaker, Client, PeerConfig};
use service_kit::ops::Readiness;
use service_kit::server::Service;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Verifier;
use crate::config::Config;
use crate::dashboard::Backends;
use crate::proxy::{Route, Upstream};
use crate::ratelimit::RateLimiter;

/// The port the gateway listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// How often the JWKS is fetched again even without an unknown `kid`.
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// What the handler can reach, behind one `Arc`: axum clones the state for every
/// request, and one reference count is cheaper than one per field.
pub type AppState = Arc<Gateway>;

/// The gateway's shared parts.
pub struct Gateway {
    pub routes: Vec<Route>,
    pub verifier: Verifier,
    pub limiter: RateLimiter,
    pub http: proxy::HttpClient,
    pub trusted_proxies: Vec<IpAddr>,
    pub backends: Backends,
}

/// Builds the gateway.
pub struct Application;

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Service> {
        let settings = &config.client;
        let user = config.user_service.peer(settings);
        let inventory = config.inventory_service.peer(settings);
        let order = config.order_service.peer(settings);
        let payment = config.payment_service.peer(settings);
        let notification = config.notification_service.peer(settings);
        let upstream = |peer: &PeerConfig| {
            Arc::new(Upstream {
                name: peer.name,
                base_url: peer.base_url.clone(),
                key: peer.key.clone(),
                breaker: CircuitBreaker::new(peer.breaker.clone()),
            })
        };
        let (user_up, order_up, inventory_up, payment_up, notification_up) = (
            upstream(&user),
            upstream(&order),
            upstream(&inventory),
            upstream(&payment),
            upstream(&notification),
        );
        let route = |prefix, target, upstream: &Arc<Upstream>| Route {
            prefix,
            target,
            upstream: upstream.clone(),
        };
        let routes = vec![
            route("/api/auth", "/auth", &user_up),
            route("/api/users", "/users", &user_up),
            route("/api/orders", "/orders", &order_up),
            route("/api/products", "/products", &inventory_up),
            route("/api/payments", "/payments", &payment_up),
            route("/api/notifications", "/notifications", &notification_up),
            route("/api/webhooks", "/webhooks", &notification_up),
        ];

        let redis = service_kit::redis::connect(&config.redis).await?;
        service_kit::metrics::handle();
        let verifier = Verifier::new(
            Client::new("gateway", user.clone())?,
            &config.jwt_issuer,
            &config.jwt_audience,
        );
        if let Err(error) = verifier.refresh().await {
            tracing::warn!(error = format!("{error:#}"), "no JWKS yet; will retry");
        }
        let backends = Backends {
            user: Client::new("gateway", user)?,
            order: Client::new("gateway", order)?,
            payment: Client::new("gateway", payment)?,
            notification: Client::new("gateway", notification)?,
            timeout: Duration::from_millis(config.dashboard_timeout_ms),
        };
        let state = Arc::new(Gateway {
            routes,
            verifier: verifier.clone(),
            limiter: RateLimiter::new(
                redis.clone(),
                &config.rate_limit_key_prefix,
                config.rate_limit_per_minute,
            ),
            http: proxy::http_client(Duration::from_millis(
                settings.http_client_connect_timeout_ms,
            )),
            trusted_proxies: config.trusted_proxies.0.clone(),
            backends,
        });

        let ready_verifier = verifier.clone();
        let readiness = Readiness::new()
            .with_redis(redis)
            .with_check("jwks", move || {
                let verifier = ready_verifier.clone();
                async move {
                    if verifier.has_keys().await || verifier.refresh().await.is_ok() {
                        Ok(())
                    } else {
                        Err("the user service's JWKS could not be fetched".to_owned())
                    }
                }
            });
        let mut api = Router::new().fallback(proxy::handle).with_state(state);
        if let Some(cors) = cors(&config.cors_origins) {
            api = api.layer(cors);
        }
        let router = service_kit::middleware::apply(
            service_kit::ops::router(readiness).merge(api),
            config.http.request_timeout(),
        );
        let listener = Service::bind(config.http.listen_addr(DEFAULT_PORT)).await?;
        let service = Service::new(listener, router, config.http.shutdown_timeout());
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

/// CORS for the configured origins; `None` when there are none.
fn cors(origins: &str) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| HeaderValue::from_str(s).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
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
    )
}
