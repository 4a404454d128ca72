//! What a message's `Connection` headers say, read the same way for a client's request
//! and a service's answer.

use http::header::{self, HeaderName};

/// Headers that describe one connection, never passed on (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What a message's `Connection` headers say: whether `close`, and which other headers
/// describe that one connection (RFC 9110 §7.6.1). Read the same way for a client's
/// request and a service's answer; nothing is allocated unless a header is named.
pub struct ConnectionOptions<'a> {
    pub close: bool,
    /// The names listed beyond `close` and the hop-by-hop ones (left out anyway).
    named: Vec<&'a [u8]>,
}

impl<'a> ConnectionOptions<'a> {
    /// Reads the values of a message's `Connection` headers.
    pub fn of(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut options = Self {
            close: false,
            named: Vec::new(),
        };
        for value in values {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    options.close = true;
                } else if !token.is_empty()
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes()))
                {
                    options.named.push(token);
                }
            }
        }
        options
    }

    /// Whether `name` describes the connection only: hop-by-hop, or named here.
    pub fn excludes(&self, name: &HeaderName) -> bool {
        HOP_BY_HOP.contains(name)
            || self
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes()))
    }
}
