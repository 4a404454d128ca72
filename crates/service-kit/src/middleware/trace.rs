//! The server side of one request's trace: the caller's `traceparent` continued (or a
//! new trace started), its `tracestate` carried on, the serving span named on the
//! response and exported when spans are exported ([`crate::otel`]).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;

use super::access::RouteOf;
use crate::otel;
use crate::trace_context::{self, TRACEPARENT, TRACESTATE, TraceParent};

/// The server side of one request's trace: the caller's context (if it sent a valid
/// `traceparent`), the span this service serves it in, and what an exported span needs.
pub struct Served {
    incoming: Option<TraceParent>,
    /// The span serving the request: a child of the caller's, or a new root.
    pub trace: TraceParent,
    /// When serving began; read only when spans are exported.
    started: Option<std::time::SystemTime>,
    /// Method and path, kept only when spans are exported (the request moves on).
    exported: Option<(String, String)>,
    /// The caller's `tracestate`, passed on to whom this service calls (boxed: it is
    /// rare, and this is part of every request's future).
    state: Option<Box<HeaderValue>>,
}

impl Served {
    pub fn begin(request: &Request) -> Self {
        let incoming = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        // Without a valid parent, a `tracestate` belongs to no trace of ours.
        let state = incoming
            .and_then(|_| request.headers().get(&TRACESTATE))
            .map(|state| Box::new(state.clone()));
        Self {
            incoming,
            trace: incoming.map_or_else(TraceParent::new_root, |t| t.child()),
            started: otel::enabled().then(std::time::SystemTime::now),
            exported: otel::enabled().then(|| {
                (
                    request.method().to_string(),
                    request.uri().path().to_owned(),
                )
            }),
            state,
        }
    }

    /// Runs the request's handling within its trace and the caller's `tracestate` (the
    /// task-local that the outgoing client reads).
    pub fn scope<F: Future>(&mut self, handling: F) -> impl Future<Output = F::Output> {
        trace_context::scope_with_state(self.trace, self.state.take(), handling)
    }

    /// Names the serving span on the response and exports it when spans are exported.
    pub fn finish(self, response: &mut Response, route_of: RouteOf) {
        response
            .headers_mut()
            .insert(TRACEPARENT, self.trace.to_header_value());
        let (Some((method, path)), Some(started)) = (self.exported, self.started) else {
            return;
        };
        otel::record(
            otel::Kind::Server,
            self.trace,
            self.incoming.map(|t| t.span_id),
            started,
            || {
                // Named by route template (`GET /orders/{id}`), never by raw path, as
                // OpenTelemetry asks: the template is on the response by now.
                let name = match route_of(response) {
                    Some(route) => format!("{method} {route}"),
                    None => method.clone(),
                };
                let status = i64::from(response.status().as_u16());
                (
                    name.into(),
                    vec![
                        opentelemetry::KeyValue::new("http.request.method", method),
                        opentelemetry::KeyValue::new("url.path", path),
                        opentelemetry::KeyValue::new("http.response.status_code", status),
                    ],
                )
            },
        );
    }
}
