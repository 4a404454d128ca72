//! W3C Trace Context (`traceparent`): the trace a request belongs to, continued from the
//! caller when it sent one, started here otherwise.
//!
//! The server layer keeps the context of the request being served in a task-local, so
//! the outgoing HTTP client can send a child `traceparent` without the handler passing
//! anything along, and the trace id lands in the request's log span.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use rand::RngCore;

/// The W3C header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// A parsed `traceparent`: version 00, trace id, parent (span) id, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // All-zero ids are invalid; a CSPRNG practically never yields one, but be exact.
    while bytes.iter().all(|b| *b == 0) {
        rand::rng().fill_bytes(&mut bytes);
    }
    bytes
}

fn parse_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != N * 2 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `out` (twice as long). Hand-rolled because this
/// runs on every outgoing call, and `format!` per byte costs more than the rest of the
/// header work together.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        out[i * 2] = HEX[usize::from(byte >> 4)];
        out[i * 2 + 1] = HEX[usize::from(byte & 0x0f)];
    }
}

/// Length of a version-00 `traceparent`.
const LEN: usize = 55;

impl TraceParent {
    /// A new trace, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: random(),
            span_id: random(),
            flags: 0x01,
        }
    }

    /// Parses version-00 `traceparent`; `None` for anything malformed or all-zero.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace_id = parse_hex::<16>(trace)?;
        let span_id = parse_hex::<8>(span)?;
        let flags = parse_hex::<1>(flags)?[0];
        if trace_id.iter().all(|b| *b == 0) || span_id.iter().all(|b| *b == 0) {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The same trace with a new span id: what to send on an outgoing call.
    pub fn child(&self) -> Self {
        Self {
            span_id: random(),
            ..*self
        }
    }

    pub fn trace_id_hex(&self) -> String {
        let mut out = [0u8; 32];
        write_hex(&self.trace_id, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `00-<trace id>-<span id>-<flags>` as bytes, without allocating.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [b'-'; LEN];
        out[0] = b'0';
        out[1] = b'0';
        write_hex(&self.trace_id, &mut out[3..35]);
        write_hex(&self.span_id, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        out
    }

    /// The header value to send.
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.encode()).unwrap_or_else(|_| {
            HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00")
        })
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

/// The trace context of the request this task is serving, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// Runs `future` within `trace` (for work spawned off a request, and for tests).
pub fn scope<F: Future>(trace: TraceParent, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(trace, future)
}

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
}

impl Served {
    pub fn begin(request: &Request) -> Self {
        let incoming = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        Self {
            incoming,
            trace: incoming.map_or_else(TraceParent::new_root, |t| t.child()),
            started: crate::otel::enabled().then(std::time::SystemTime::now),
            exported: crate::otel::enabled().then(|| {
                (
                    request.method().to_string(),
                    request.uri().path().to_owned(),
                )
            }),
        }
    }

    /// Names the serving span on the response and exports it when spans are exported.
    pub fn finish(self, response: &mut Response) {
        response
            .headers_mut()
            .insert(TRACEPARENT, self.trace.to_header_value());
        let (Some((method, path)), Some(started)) = (self.exported, self.started) else {
            return;
        };
        crate::otel::record(
            crate::otel::Kind::Server,
            self.trace,
            self.incoming.map(|t| t.span_id),
            started,
            || {
                // Named by route template (`GET /orders/{id}`), never by raw path, as
                // OpenTelemetry asks: the template is on the response by now.
                let name = match crate::middleware::access::route_of(response) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(value).expect("valid");
        assert_eq!(parsed.to_string(), value);
        assert_eq!(parsed.to_header_value(), value);
        let child = parsed.child();
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_ne!(child.span_id, parsed.span_id);
    }

    #[test]
    fn malformed_or_zero_traceparents_are_refused() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad} accepted");
        }
    }
}
