//! The console's page, script and style, compiled into the binary and served with a
//! Content-Security-Policy that allows only these files: no inline script or style,
//! no other origin; `blob:` images for the chart the script fetches with its token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// The policy every console response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's paths.
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The asset at `path` (one of [`is_console`]'s).
pub fn serve(path: &str) -> Response {
    let (body, content_type) = match path {
        "/console" | "/console/" => (PAGE, "text/html; charset=utf-8"),
        "/console/console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/console/console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return service_kit::Problem::not_found("No such resource.").into_response(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_runs_no_inline_script() {
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert!(!PAGE.contains("style="), "no inline style");
        assert!(PAGE.contains(r#"<script src="/console/console.js" defer></script>"#));
        assert!(!SCRIPT.contains("innerHTML"), "values go in as text");
        let answer = serve("/console");
        assert_eq!(
            answer.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(serve("/console/other").status(), StatusCode::NOT_FOUND);
    }
}
