//! The gateway's one handler for `/api/*`: canonical path, route, auth, rate limit,
//! then the request streamed to its service and the answer streamed back.
//!
//! One file: one request's way through the gateway, in the order it happens; the
//! upstreams are [`crate::upstream`], the wire exchange [`crate::connections`].
//!
//! Headers are cleaned, not passed through: as the service's request is written,
//! hop-by-hop headers, any named in `Connection` and everything the gateway vouches for
//! (`Authorization`, `X-User-Id`, `X-User-Roles`, `X-Service-Name`, `X-Forwarded-*`,
//! `traceparent`, `Host`) are left out of the client's, and the gateway's own are
//! written after them (`X-Request-ID` is the server stack's sanitized one), so no client
//! can name a user, a role or a service key, and no `Connection` header can strip what
//! the gateway sets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service_client::breaker::{Outcome, Permit};
use service_kit::Problem;
use service_kit::otel;
use service_kit::request_id::REQUEST_ID_HEADER;
use service_kit::trace_context::{self, TRACEPARENT, TraceParent};
use tower::ServiceExt;

use crate::auth::{self, Identity, unauthorized};
use crate::connections::{ConnectionOptions, Connections, Failure, Head};
use crate::path;
use crate::routes::{self, Resolved};
use crate::serve::stack::RouteLabel;
use crate::state::{AppState, Gateway, Worker};
use crate::upstream::{Route, Upstream};

/// What a canonical path names.
#[derive(Clone, Copy)]
enum Target<'a> {
    Service(&'a Route),
    /// One of the gateway's own endpoints, under this prefix.
    Gateway(&'static str),
    Unknown,
}

/// Headers a client's request never passes on to a service: those the gateway sets
/// itself (`Host`, `Authorization`, `X-Service-Name`, `X-Forwarded-*`, `traceparent`,
/// the caller's identity), and those only the gateway may send (`Forwarded`, a
/// deadline). `X-Request-ID` is already the server stack's own.
const GATEWAYS_OWN: [HeaderName; 12] = [
    header::HOST,
    header::AUTHORIZATION,
    X_SERVICE_NAME,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    header::FORWARDED,
    TRACEPARENT,
    X_USER_ID,
    X_USER_ROLES,
    HeaderName::from_static("x-deadline-ms"),
    header::CONTENT_LENGTH,
];

/// Answers `request` from `peer` (the client, or a proxy in front of the gateway).
pub async fn handle(worker: AppState, peer: SocketAddr, request: Request) -> Response {
    let state = &*worker.gateway;
    // A clone shares the path's bytes; the canonical path borrows them while the
    // request moves on.
    let uri = request.uri().clone();
    let Ok(path) = path::normalize(uri.path()) else {
        return Problem::bad_request("The request path is malformed.").into_response();
    };
    let method = request.method().clone();
    let client_ip = client_ip(state, peer.ip(), request.headers());

    let target = match routes::find(&state.routes, &path) {
        Some(Resolved::Service(route)) => Target::Service(route),
        Some(Resolved::Gateway(prefix)) => Target::Gateway(prefix),
        None => Target::Unknown,
    };
    let public = routes::is_public(&method, &path);
    let verified = match auth::bearer(request.headers()) {
        Ok(token) => worker.verifier.verify(token).await,
        Err(missing) => Err(missing),
    };
    let caller = verified.as_ref().ok().cloned();

    // Every request counts, the refused and the unknown too (API.md: against its user,
    // or its client IP when it has no valid token), and every answer says so.
    let decision = if worker.limiter.enabled() {
        let decision = match &caller {
            Some(identity) => worker.limiter.check(&identity.rate_key).await,
            None => worker.limiter.check(&format!("ip:{client_ip}")).await,
        };
        Some(decision)
    } else {
        None
    };
    let mut response = if let Some(decision) = decision.filter(|d| !d.allowed) {
        let mut response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests; try again after the time in Retry-After.",
        )
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(decision.retry_after()),
        );
        response
    } else if let (Err(invalid), false, false) =
        (&verified, public, matches!(target, Target::Unknown))
    {
        unauthorized(invalid)
    } else {
        match target {
            Target::Unknown => Problem::not_found("No such resource.").into_response(),
            Target::Gateway(_) => {
                // Boxed: the dashboard's and the console's calls make large futures,
                // and unboxed they would size (and be copied with) every proxied
                // request's.
                Box::pin(own(&worker, &path, caller.as_deref(), request)).await
            }
            Target::Service(route) => {
                forward(
                    &worker.connections,
                    route,
                    &path[route.prefix.len()..],
                    caller.as_deref(),
                    client_ip,
                    request,
                )
                .await
            }
        }
    };
    if let Some(decision) = decision {
        let headers = response.headers_mut();
        headers.reserve(5);
        for (name, value) in worker.limiter.headers(&decision) {
            headers.insert(name, value);
        }
    }
    // The route for the access metrics and the span's name: the route's prefix, never
    // the raw path (a caller must not be able to mint label values).
    let label = match target {
        Target::Service(route) => Some(route.prefix),
        Target::Gateway(prefix) => Some(prefix),
        Target::Unknown => None,
    };
    if let Some(label) = label {
        response.extensions_mut().insert(RouteLabel(label));
    }
    response
}

/// Hands `request` to the gateway's own endpoints ([`crate::endpoints`]) at its
/// canonical `path`, with the verified caller, if any, as an extension.
async fn own(
    worker: &Worker,
    path: &str,
    caller: Option<&Identity>,
    mut request: Request,
) -> Response {
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let Ok(uri) = target.parse() else {
        return Problem::bad_request("The request path is malformed.").into_response();
    };
    *request.uri_mut() = uri;
    if let Some(identity) = caller {
        request.extensions_mut().insert(identity.caller.clone());
    }
    match worker.endpoints.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which
/// case the nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(state: &Gateway, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !state.trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !state.trusted_proxies.contains(ip))
        .unwrap_or(peer)
}

/// Writes the headers a service gets: the client's, cleaned, then the gateway's own.
/// Written straight into the request's head: no header map is built for it.
fn upstream_headers(
    head: &mut Head,
    headers: &HeaderMap,
    upstream: &Upstream,
    caller: Option<&Identity>,
    client_ip: IpAddr,
    trace: Option<TraceParent>,
) {
    let connection = ConnectionOptions::of(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    for (name, value) in headers {
        // The request id is the server stack's, whatever `Connection` says. `Expect`
        // was answered here (the gateway's server sends `100 Continue` as it reads the
        // body) and the body goes on whole: asked again, a service's `100 Continue`
        // would be one more answer in the exchange.
        if name == REQUEST_ID_HEADER
            || !(connection.excludes(name) || GATEWAYS_OWN.contains(name) || name == header::EXPECT)
        {
            head.header(name, value);
        }
    }
    head.header(&header::HOST, &upstream.host);
    head.header(&header::AUTHORIZATION, &upstream.authorization);
    head.header_with(&X_SERVICE_NAME, |out| out.extend_from_slice(b"gateway"));
    head.header_with(&X_FORWARDED_FOR, |out| write_ip(client_ip, out));
    head.header_with(&X_FORWARDED_PROTO, |out| out.extend_from_slice(b"http"));
    if let Some(host) = headers
        .get(header::HOST)
        .filter(|host| host.to_str().is_ok())
    {
        head.header(&X_FORWARDED_HOST, host);
    }
    // The caller's trace continues through the gateway's own span of it.
    if let Some(trace) = trace {
        head.header_with(&TRACEPARENT, |out| out.extend_from_slice(&trace.encode()));
    }
    if let Some(identity) = caller {
        head.header(&X_USER_ID, &identity.user_id);
        head.header(&X_USER_ROLES, &identity.roles);
    }
}

const X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const X_USER_ROLES: HeaderName = HeaderName::from_static("x-user-roles");

/// Writes `ip` as text. An IPv4 address is written by hand: `Display` goes through the
/// formatting machinery, which cost more than the rest of the header work.
fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    let IpAddr::V4(v4) = ip else {
        out.extend_from_slice(ip.to_string().as_bytes());
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

/// Sends `request` to `route`'s service at `rest` (the path after the route's prefix).
///
/// The request to the service is made by [`outgoing`], a plain function, so that
/// nothing but what the exchange needs afterwards is held across it: this future is
/// moved whole on every request, and every byte it holds is copied with it.
async fn forward(
    connections: &Connections,
    route: &Route,
    rest: &str,
    caller: Option<&Identity>,
    client_ip: IpAddr,
    request: Request,
) -> Response {
    let upstream = &route.upstream;
    let served = trace_context::current();
    let trace = served.map(|t| t.child());
    // The method and wall-clock start only for an exported span.
    let exported = otel::enabled().then(|| (request.method().clone(), SystemTime::now()));
    let Some((head, body)) = outgoing(route, rest, caller, client_ip, trace, request) else {
        return Problem::bad_request("The request path is malformed.").into_response();
    };
    let Ok(permit) = upstream.breaker.try_acquire() else {
        return Problem::unavailable(format!("The {} service is unavailable.", upstream.name))
            .into_response();
    };
    let call = Waiting {
        upstream,
        permit: Some(permit),
        started: Instant::now(),
    };
    let result = connections.send(&upstream.destination, head, body).await;
    if let (Some(span), Some((method, started_at))) = (trace, exported) {
        otel::record(
            otel::Kind::Client,
            span,
            served.map(|t| t.span_id),
            started_at,
            || {
                let status = result
                    .as_ref()
                    .map_or(0, |r| i64::from(r.status().as_u16()));
                (
                    format!("{method} {}", upstream.name).into(),
                    vec![
                        opentelemetry::KeyValue::new("peer.service", upstream.name),
                        opentelemetry::KeyValue::new("http.response.status_code", status),
                    ],
                )
            },
        );
    }
    match result {
        Ok(response) => {
            let outcome = if answered_for_itself(response.status()) {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            call.record(outcome);
            // Its hop-by-hop headers were left with its connection.
            response
        }
        Err(Failure::Body(error)) if body_too_large(&error) => {
            // The client's body outgrew the limit on the way: the client's fault, not
            // the service's, so the breaker does not count it.
            call.record(Outcome::Success);
            StatusCode::PAYLOAD_TOO_LARGE.into_response()
        }
        Err(error) => {
            call.record(Outcome::Failure);
            tracing::warn!(upstream = upstream.name, error = %error, "upstream call failed");
            if matches!(error, Failure::Connect { .. }) {
                Problem::unavailable(format!("The {} service is unavailable.", upstream.name))
                    .into_response()
            } else {
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    format!("The {} service failed.", upstream.name),
                )
                .into_response()
            }
        }
    }
}

/// A call waiting for its service's answer. Dropped while it waits (the request's time
/// limit passed, or the client went), it counts against the service if it had waited
/// past the breaker's slow-call time: a service that has not begun to answer by then
/// is failing, as one that answers that slowly is. Sooner, the client simply left.
/// (The wait has no timer of its own, a cost per request docs/bench-gateway.md
/// measures; the request's time limit ends it.)
struct Waiting<'a> {
    upstream: &'a Upstream,
    permit: Option<Permit>,
    started: Instant,
}

impl Waiting<'_> {
    /// The answer came (or the call failed): records how.
    fn record(mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            let elapsed = self.started.elapsed();
            self.upstream.breaker.record(permit, outcome, elapsed);
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let waited = self.started.elapsed();
        if waited >= self.upstream.slow_call {
            tracing::warn!(
                upstream = self.upstream.name,
                ?waited,
                "no answer before the request ended"
            );
            self.upstream
                .breaker
                .record(permit, Outcome::Failure, waited);
        }
    }
}

/// Whether an answer shows its service alive. A service that answers, with any status,
/// is alive: its own 500 or 503 (a dependency of its down, say) is its answer to pass
/// on, and counting it would close every route of the service for the fault of one.
/// Only 502 and 504 say the service could not do its work in time or reached nothing:
/// those count against it, as connect failures, resets, hang-ups and slow answers do.
fn answered_for_itself(status: StatusCode) -> bool {
    !matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The request `route`'s service gets for `request`: its head (origin-form target
/// `/path?query` at `rest`, the connection being the service's already; the headers of
/// [`upstream_headers`]) and the client's body. None when the path makes no target.
fn outgoing(
    route: &Route,
    rest: &str,
    caller: Option<&Identity>,
    client_ip: IpAddr,
    trace: Option<TraceParent>,
    request: Request,
) -> Option<(Head, Body)> {
    let upstream = &route.upstream;
    let (parts, body) = request.into_parts();
    let (mark, query) = match parts.uri.query() {
        Some(query) => ("?", query),
        None => ("", ""),
    };
    let mut head = Head::new(
        &parts.method,
        &[&upstream.base_path, route.target, rest, mark, query],
    )?;
    upstream_headers(
        &mut head,
        &parts.headers,
        upstream,
        caller,
        client_ip,
        trace,
    );
    Some((head, body))
}

/// Whether the call failed because the request's body passed the server's limit
/// (a body of undeclared length is only measured as it is streamed).
fn body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source())
        .any(|error| error.is::<http_body_util::LengthLimitError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.255.9",
            "255.255.255.255",
            "192.168.0.10",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut written = Vec::new();
            write_ip(ip, &mut written);
            assert_eq!(written, ip.to_string().as_bytes(), "{ip}");
        }
    }
}
