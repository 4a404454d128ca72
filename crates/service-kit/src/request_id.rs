//! The request id: accepted from the client when sane, generated otherwise, echoed on the
//! response, carried by the request's tracing span and by every problem body.
//!
//! The id lives in a task-local for the life of the request so that code far from the
//! handler (problem rendering, the outgoing HTTP client) can read it without threading it
//! through every signature.

use crate::trace_context::TraceParent;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The header that carries the id in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id that is kept.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one request, as set by [`adopt`]: 1 to 128 visible ASCII characters, kept
/// as the header value it travels as, so setting it on the request and the response
/// copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A fresh random id (a UUID, written without the formatting machinery: this runs
    /// for every request that brings no id).
    pub fn generate() -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        // A UUID's text is always a valid header value; the fallback only satisfies the
        // types.
        Self(HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("-")))
    }

    /// The client's value if it is sane (1 to 128 visible ASCII characters), else a fresh
    /// one. Anything else could smuggle control characters into our logs.
    pub fn from_client(value: Option<&HeaderValue>) -> Self {
        value
            .filter(|v| is_sane(v.as_bytes()))
            .map_or_else(Self::generate, |v| Self(v.clone()))
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever kept, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_sane(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_LEN && value.iter().all(u8::is_ascii_graphic)
}

/// The id of the request this task is serving, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.as_str().to_owned()).ok()
}

/// Runs `future` as part of the request `id` (for work spawned off a request).
pub fn scope<F: Future>(id: RequestId, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, future)
}

/// Takes the request's id from the client when sane, makes one otherwise, and sets it
/// on the request's header for the handler to see (a proxy passes it on as it is).
pub fn adopt(request: &mut Request) -> RequestId {
    let id = RequestId::from_client(request.headers().get(&REQUEST_ID_HEADER));
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, id.0.clone());
    id
}

/// The request's log span: every line logged while serving it carries the id.
pub fn span(id: &RequestId, request: &Request, trace: &TraceParent) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        trace_id = %trace.trace_id_hex(),
    )
}

/// Echoes the id on the response.
pub fn echo(id: &RequestId, response: &mut Response) {
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER, id.0.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_for(value: &[u8]) -> RequestId {
        let header = HeaderValue::from_bytes(value).expect("a header value");
        RequestId::from_client(Some(&header))
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(id_for(b"abc-123_XYZ").as_str(), "abc-123_XYZ");
        let longest = "a".repeat(MAX_LEN);
        assert_eq!(id_for(longest.as_bytes()).as_str(), longest);
    }

    #[test]
    fn an_overlong_id_is_replaced() {
        let long = "a".repeat(MAX_LEN + 1);
        assert_ne!(id_for(long.as_bytes()).as_str(), long);
    }

    #[test]
    fn ids_with_spaces_control_or_non_ascii_characters_are_replaced() {
        for bad in [&b"has space"[..], b"tab\there", b"caf\xc3\xa9"] {
            let id = id_for(bad);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{bad:?} kept");
        }
    }

    #[test]
    fn a_missing_id_is_generated() {
        let id = RequestId::from_client(None);
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
    }
}
