//! Request paths made canonical before anything looks at them.
//!
//! Routing and auth decide on the path a service will see, so the gateway first turns
//! every spelling of it into one: percent-encoded dots and slashes decoded, repeated
//! slashes collapsed, `.` and `..` segments resolved (RFC 3986 §5.2.4). A path that
//! climbs above the root, or carries a backslash or a NUL, is refused. The canonical
//! path is what is routed, authorised and forwarded; `/api/orders/..%2f..%2fusers`
//! becomes `/users`, which no route names.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath;

/// The canonical form of `raw` (the request target's path, still percent-encoded):
/// `raw` itself when it already is, as nearly every request's path is.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath);
    }
    if is_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_structural(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(BadPath)?;
            }
            segment => segments.push(segment),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    // The root, or a trailing slash the client wrote.
    if path.is_empty() || decoded.ends_with('/') {
        path.push('/');
    }
    Ok(Cow::Owned(path))
}

/// Whether `path` (starting with `/`) has nothing to decode, collapse or resolve: no
/// escapes, backslashes or NULs, and no empty, `.` or `..` segment (but the last may be
/// empty: a trailing slash is kept).
fn is_canonical(path: &str) -> bool {
    if path.bytes().any(|b| matches!(b, b'%' | b'\\' | 0)) {
        return false;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return false,
            "" if !last => return false,
            _ => {}
        }
    }
    true
}

/// Decodes the escapes that change a path's structure (`%2e` `.`, `%2f` `/`) and
/// refuses those that have no business in one (`%5c` `\`, `%00`); other escapes stay
/// as they are, for the service to decode.
fn decode_structural(raw: &str) -> Result<String, BadPath> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' | 0 => return Err(BadPath),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(BadPath)?;
                let value = u8::from_str_radix(hex, 16).map_err(|_| BadPath)?;
                match value {
                    b'.' => out.push('.'),
                    b'/' => out.push('/'),
                    b'\\' | 0 => return Err(BadPath),
                    _ => {
                        out.push('%');
                        out.push_str(hex);
                    }
                }
                i += 3;
            }
            byte => {
                out.push(char::from(byte));
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_path_becomes_one() {
        for (raw, canonical) in [
            ("/api/orders", "/api/orders"),
            ("/api/users/../orders", "/api/orders"),
            ("/api/%2e%2e/orders", "/orders"),
            ("/api/%2E%2E/api/orders", "/api/orders"),
            ("//api/orders", "/api/orders"),
            ("/api//orders/./x", "/api/orders/x"),
            ("/api/orders/..%2f..%2fusers", "/users"),
            ("/api/orders/%2e%2e%2F%2e%2e%2Fusers", "/users"),
            ("/api/products/a%20b", "/api/products/a%20b"),
            ("/api/orders/", "/api/orders/"),
            ("/api/./orders", "/api/orders"),
            ("/api/orders/.", "/api/orders"),
            ("/api/orders/..", "/api"),
            ("/api/orders//", "/api/orders/"),
            ("/api/orders.json", "/api/orders.json"),
            ("/api/..orders/...", "/api/..orders/..."),
            ("/", "/"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(canonical), "{raw}");
        }
    }

    #[test]
    fn paths_that_climb_out_or_hide_separators_are_refused() {
        for raw in [
            "/..",
            "/api/../../etc",
            "/api\\orders",
            "/api/%5c",
            "/api/%00",
            "/api/%zz",
            "/api/%2",
            "api/orders",
        ] {
            assert_eq!(normalize(raw), Err(BadPath), "{raw}");
        }
    }
}
