//! W3C Trace Context: the `traceparent` type, its parsing and encoding, and the
//! task-local that holds the trace of the work a task is doing (with the caller's
//! `tracestate`, carried on unchanged), so the outgoing HTTP client and the event
//! publisher send a child `traceparent` without the handler passing anything along.
//!
//! A leaf: the server side of a request's trace is [`crate::middleware::trace`].

use axum::http::{HeaderName, HeaderValue};
use rand::RngCore;

/// The W3C header naming the trace and the caller's span.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The W3C header of vendors' trace data, passed on as it came.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

tokio::task_local! {
    // The state boxed: it is rare, and the task-local is part of every request's
    // future, which is moved whole.
    static CURRENT: (TraceParent, Option<Box<HeaderValue>>);
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

/// Length of a version-00 `traceparent`, and the least of any version's.
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

    /// Parses a `traceparent`; `None` for anything malformed or all-zero.
    ///
    /// Version 00 is exactly its four fields. A later version is read as W3C asks: its
    /// first four fields as version 00's, followed by nothing or by `-` and whatever
    /// that version adds (ignored); version `ff` is invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let version = parse_hex::<1>(value.get(..2)?)?[0];
        let known = match version {
            0xff => return None,
            0x00 => value.len() == LEN,
            _ => value.len() == LEN || value.as_bytes().get(LEN) == Some(&b'-'),
        };
        if !known {
            return None;
        }
        let mut parts = value[..LEN].split('-');
        let (_, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
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

/// The trace context of the work this task is doing, if any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|(trace, _)| *trace).ok()
}

/// The `tracestate` the current work's caller sent, to send on with a child of
/// [`current`].
pub fn state() -> Option<HeaderValue> {
    CURRENT
        .try_with(|(_, state)| state.as_deref().cloned())
        .ok()
        .flatten()
}

/// Runs `future` within `trace` (an event's handling, work spawned off a request).
pub fn scope<F: Future>(trace: TraceParent, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope((trace, None), future)
}

/// Runs `future` within `trace` and the caller's `tracestate` (a request's handling).
pub fn scope_with_state<F: Future>(
    trace: TraceParent,
    state: Option<Box<HeaderValue>>,
    future: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope((trace, state), future)
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
    fn a_later_version_is_read_for_its_first_four_fields() {
        let base = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for value in [format!("01-{base}"), format!("cc-{base}-what-comes-later")] {
            let parsed = TraceParent::parse(&value).expect("a later version");
            // Sent on as the version this code knows.
            assert_eq!(parsed.to_string(), format!("00-{base}"));
        }
        for bad in [
            format!("ff-{base}"),
            format!("01-{base}x"),
            format!("00-{base}-later"),
            format!("0g-{base}"),
        ] {
            assert!(TraceParent::parse(&bad).is_none(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn the_callers_tracestate_is_carried_with_the_trace() {
        let trace = TraceParent::new_root();
        let state = HeaderValue::from_static("vendor=opaque");
        let seen = scope_with_state(trace, Some(Box::new(state.clone())), async {
            (current(), self::state())
        })
        .await;
        assert_eq!(seen, (Some(trace), Some(state)));
        assert_eq!(scope(trace, async { self::state() }).await, None);
    }

    #[test]
    fn malformed_or_zero_traceparents_are_refused() {
        for bad in [
            "",
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
