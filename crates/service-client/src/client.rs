//! [`Client`]: one per peer. [`Call`]: one request, built like a `reqwest` request.
//!
//! One file: a client and the call it makes share their private state (the peer, its
//! breaker, its budget); apart, each would reach into the other.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use service_kit::internal_auth::{Caller, SERVICE_NAME_HEADER, USER_ID_HEADER, USER_ROLES_HEADER};
use service_kit::request_id::REQUEST_ID_HEADER;
use service_kit::trace_context::{TRACEPARENT, TRACESTATE, TraceParent};
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use crate::breaker::{CircuitBreaker, Outcome};
use crate::config::PeerConfig;
use crate::error::{Error, ErrorKind, Invalid};
use crate::metrics::{CallOutcome, PeerMetrics};
use crate::retry;

/// The header that makes a non-idempotent request safe to retry.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// How long a retry budget deposit counts.
const BUDGET_TTL: Duration = Duration::from_secs(10);

/// A client for one peer. Clones share the connection pool, the breaker and the budget.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    peer: PeerConfig,
    /// Parsed once: a full URL parse (host, IDNA) costs more than the rest of a call's
    /// bookkeeping.
    base_url: reqwest::Url,
    authorization: HeaderValue,
    service_name: HeaderValue,
    breaker: CircuitBreaker,
    budget: TpsBudget,
    metrics: PeerMetrics,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.inner.peer.name)
            .field("base_url", &self.inner.peer.base_url)
            .finish()
    }
}

impl Client {
    /// A client that calls `peer` on behalf of the service named `caller`.
    pub fn new(caller: &'static str, peer: PeerConfig) -> Result<Self, Error> {
        let invalid = |why: Invalid| Error {
            peer: peer.name,
            kind: ErrorKind::InvalidRequest(why),
            attempts: 0,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(peer.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| invalid(Invalid::Client(e)))?;
        let base_url = reqwest::Url::parse(&peer.base_url).map_err(|cause| {
            invalid(Invalid::BaseUrl {
                url: peer.base_url.clone(),
                cause,
            })
        })?;
        if base_url.cannot_be_a_base() || !matches!(base_url.scheme(), "http" | "https") {
            return Err(invalid(Invalid::NotHttp(peer.base_url.clone())));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", peer.key.expose()))
            .map_err(|_| invalid(Invalid::ServiceKey))?;
        authorization.set_sensitive(true);
        let service_name = HeaderValue::from_static(caller);
        let metrics = PeerMetrics::new(peer.name);
        let hook_metrics = metrics.clone();
        let breaker = CircuitBreaker::new(peer.breaker.clone())
            .with_transition_hook(Arc::new(move |from, to| hook_metrics.transition(from, to)));
        crate::breaker::registry::register(peer.name, &breaker);
        let budget = TpsBudget::new(
            BUDGET_TTL,
            peer.retry_budget_min_per_second,
            peer.retry_budget_ratio,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                peer,
                base_url,
                authorization,
                service_name,
                breaker,
                budget,
                metrics,
            }),
        })
    }

    /// The peer's breaker, to read its state.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    pub fn peer(&self) -> &PeerConfig {
        &self.inner.peer
    }

    /// A request to `path` (which starts with `/`).
    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            client: self.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: None,
            attempt_timeout: None,
            deadline: None,
            error: None,
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }
}

/// A peer's successful (2xx) answer, body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Requests sent for this call, retries included.
    pub attempts: u32,
}

impl Response {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// One call, configured then sent.
#[derive(Debug)]
pub struct Call {
    client: Client,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    error: Option<Invalid>,
}

impl Call {
    /// A JSON body. It is serialised once and the same bytes are resent on a retry.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.body = Some(Bytes::from(bytes));
            }
            Err(error) => self.error = Some(Invalid::Body(error)),
        }
        self
    }

    /// An extra header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Marks the request as safe to retry under `key`: the peer applies it at most once.
    pub fn idempotency_key(mut self, key: &str) -> Self {
        match HeaderValue::from_str(key) {
            Ok(value) => {
                self.headers.insert(IDEMPOTENCY_KEY, value);
            }
            Err(_) => self.error = Some(Invalid::IdempotencyKey),
        }
        self
    }

    /// Adds a fresh idempotency key, so a POST may be retried.
    pub fn with_idempotency_key(self) -> Self {
        let key = uuid::Uuid::new_v4().to_string();
        self.idempotency_key(&key)
    }

    /// Acts for `caller`: forwards the end user's identity as the gateway set it.
    pub fn on_behalf_of(mut self, caller: &Caller) -> Self {
        if let Ok(id) = HeaderValue::from_str(&caller.user_id.to_string()) {
            self.headers.insert(USER_ID_HEADER, id);
        }
        let roles: Vec<&str> = caller.roles.iter().map(|r| r.as_str()).collect();
        if let Ok(roles) = HeaderValue::from_str(&roles.join(",")) {
            self.headers.insert(USER_ROLES_HEADER, roles);
        }
        self
    }

    /// This call's per-attempt timeout, instead of the peer's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// This call's overall deadline, instead of the peer's.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sends the request with retries; a non-2xx answer is an [`ErrorKind::Status`].
    pub async fn send(self) -> Result<Response, Error> {
        let client = self.client.clone();
        let inner = &client.inner;
        let started = Instant::now();
        let result = self.run().await;
        inner
            .metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        inner.metrics.call(match &result {
            Ok(_) => CallOutcome::Success,
            Err(error) => match error.kind {
                ErrorKind::Status { .. } => CallOutcome::Status,
                ErrorKind::Timeout | ErrorKind::DeadlineExceeded => CallOutcome::Timeout,
                ErrorKind::Transport(_) => CallOutcome::Transport,
                ErrorKind::CircuitOpen => CallOutcome::CircuitOpen,
                ErrorKind::RetryBudgetExhausted(_) => CallOutcome::BudgetExhausted,
                _ => CallOutcome::Other,
            },
        });
        result
    }

    /// Sends and decodes a 2xx JSON answer.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let peer = self.client.inner.peer.name;
        let response = self.send().await?;
        response.json().map_err(|e| Error {
            peer,
            kind: ErrorKind::Decode(e),
            attempts: response.attempts,
        })
    }

    async fn run(self) -> Result<Response, Error> {
        let client = self.client.clone();
        let inner = &client.inner;
        let peer = &inner.peer;
        let fail = |kind: ErrorKind, attempts: u32| Error {
            peer: peer.name,
            kind,
            attempts,
        };
        if let Some(why) = self.error {
            return Err(fail(ErrorKind::InvalidRequest(why), 0));
        }

        // The whole call must end by our own deadline and by the served request's.
        let now = Instant::now();
        let mut deadline = now + self.deadline.unwrap_or(peer.deadline);
        if let Some(served) = service_kit::deadline::current() {
            deadline = deadline.min(served);
        }
        let attempt_timeout = self.attempt_timeout.unwrap_or(peer.attempt_timeout);
        // Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
        let retryable_request =
            self.method.is_idempotent() || self.headers.contains_key(IDEMPOTENCY_KEY);
        let url = self.url();
        // Read once: the same on every attempt.
        let request_id =
            service_kit::request_id::current().and_then(|id| HeaderValue::from_str(&id).ok());
        inner.budget.deposit();

        let mut attempts = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(fail(ErrorKind::DeadlineExceeded, attempts));
            }
            let Ok(permit) = inner.breaker.try_acquire() else {
                return Err(fail(ErrorKind::CircuitOpen, attempts));
            };
            attempts += 1;
            inner.metrics.attempts.increment(1);

            let budget = attempt_timeout.min(remaining);
            let (request, trace) = self.build(&url, request_id.as_ref(), remaining);
            let sent = Instant::now();
            let sent_at = std::time::SystemTime::now();
            let outcome = tokio::time::timeout(budget, async {
                let response = http::Response::from(inner.http.execute(request).await?);
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, reqwest::Error>((parts.status, parts.headers, body))
            })
            .await;
            let elapsed = sent.elapsed();
            service_kit::otel::record(
                service_kit::otel::Kind::Client,
                trace,
                service_kit::trace_context::current().map(|t| t.span_id),
                sent_at,
                || {
                    let status = match &outcome {
                        Ok(Ok((status, ..))) => i64::from(status.as_u16()),
                        _ => 0,
                    };
                    (
                        format!("{} {}", self.method, peer.name).into(),
                        vec![
                            opentelemetry::KeyValue::new("peer.service", peer.name),
                            opentelemetry::KeyValue::new("url.full", url.to_string()),
                            opentelemetry::KeyValue::new("http.response.status_code", status),
                            opentelemetry::KeyValue::new(
                                "http.request.resend_count",
                                i64::from(attempts - 1),
                            ),
                        ],
                    )
                },
            );

            let (kind, retry_after) = match outcome {
                Ok(Ok((status, headers, body))) => {
                    let peer_failed = status.is_server_error();
                    inner.breaker.record(
                        permit,
                        if peer_failed {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        },
                        elapsed,
                    );
                    if status.is_success() {
                        return Ok(Response {
                            status,
                            headers,
                            body,
                            attempts,
                        });
                    }
                    let retry_after = retry::retry_after(&headers);
                    (ErrorKind::Status { status, body }, retry_after)
                }
                Ok(Err(error)) => {
                    inner.breaker.record(permit, Outcome::Failure, elapsed);
                    let kind = if error.is_timeout() {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Transport(error)
                    };
                    (kind, None)
                }
                Err(_) => {
                    inner.breaker.record(permit, Outcome::Failure, elapsed);
                    // Cut short by the deadline rather than the attempt timeout?
                    let kind = if budget < attempt_timeout {
                        ErrorKind::DeadlineExceeded
                    } else {
                        ErrorKind::Timeout
                    };
                    (kind, None)
                }
            };

            let may_pass = match &kind {
                ErrorKind::Status { status, .. } => retry::is_retryable_status(*status),
                ErrorKind::Timeout | ErrorKind::Transport(_) => true,
                _ => false,
            };
            if !(may_pass && retryable_request && attempts < peer.max_attempts) {
                return Err(fail(kind, attempts));
            }
            let wait = match retry_after {
                Some(wait) if wait > peer.retry_after_max => return Err(fail(kind, attempts)),
                Some(wait) => wait,
                None => retry::backoff(attempts, peer.backoff_base, peer.backoff_max),
            };
            if Instant::now() + wait >= deadline {
                // Waiting would spend the rest of the deadline: answer now instead.
                return Err(fail(kind, attempts));
            }
            if !inner.budget.withdraw() {
                return Err(fail(
                    ErrorKind::RetryBudgetExhausted(Box::new(kind)),
                    attempts,
                ));
            }
            inner.metrics.retries.increment(1);
            tracing::debug!(peer = peer.name, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %kind, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// The base URL with this call's path (and query) appended.
    fn url(&self) -> reqwest::Url {
        let base = &self.client.inner.base_url;
        let mut url = base.clone();
        let (path, query) = self
            .path
            .split_once('?')
            .map_or((self.path.as_str(), None), |(path, query)| {
                (path, Some(query))
            });
        let prefix = base.path().trim_end_matches('/');
        if prefix.is_empty() {
            url.set_path(path);
        } else {
            url.set_path(&format!("{prefix}{path}"));
        }
        url.set_query(query);
        url
    }

    /// One attempt's request: every header is set afresh, which costs less than
    /// cloning a prepared map.
    fn build(
        &self,
        url: &reqwest::Url,
        request_id: Option<&HeaderValue>,
        remaining: Duration,
    ) -> (reqwest::Request, TraceParent) {
        let inner = &self.client.inner;
        let mut request = reqwest::Request::new(self.method.clone(), url.clone());
        let headers = request.headers_mut();
        headers.reserve(self.headers.len() + 5);
        headers.insert(header::AUTHORIZATION, inner.authorization.clone());
        headers.insert(SERVICE_NAME_HEADER, inner.service_name.clone());
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, id.clone());
        }
        // Each attempt is its own span of the trace.
        let trace =
            service_kit::trace_context::current().map_or_else(TraceParent::new_root, |t| t.child());
        headers.insert(TRACEPARENT, trace.to_header_value());
        if let Some(state) = service_kit::trace_context::state() {
            headers.insert(TRACESTATE, state);
        }
        let remaining_ms = u64::try_from(remaining.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        headers.insert(
            service_kit::deadline::DEADLINE_HEADER,
            HeaderValue::from(remaining_ms),
        );
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(body) = &self.body {
            *request.body_mut() = Some(reqwest::Body::from(body.clone()));
        }
        (request, trace)
    }
}
