//! The access log and the HTTP metrics: one line and one observation per request.
//!
//! Metrics are labelled by route template (`/users/{id}`), never by raw path, so a
//! scanner walking random URLs cannot blow up the number of series.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Gauge, SharedString};

/// Label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Copies the matched route template onto the response, where [`Observation`] (which runs
/// before routing and so cannot see it on the request) picks it up.
pub async fn route_template(request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

/// One request being observed: started, counted in flight, and on [`Observation::finish`]
/// logged and recorded in `http_requests_total` and `http_request_duration_seconds`.
///
/// Leaving flight is counted on drop, so a request abandoned by its client (its future
/// dropped mid-way) does not stay in `http_requests_in_flight` forever.
pub struct Observation {
    method: SharedString,
    started: Instant,
    in_flight: Gauge,
}

impl Observation {
    pub fn begin(request: &Request) -> Self {
        let in_flight = metrics::gauge!("http_requests_in_flight");
        in_flight.increment(1.0);
        Self {
            method: method_label(request.method()),
            started: Instant::now(),
            in_flight,
        }
    }

    /// Logs and records the request's outcome.
    pub fn finish(self, response: &Response) {
        let elapsed = self.started.elapsed();
        let status = response.status();
        let route: SharedString = response
            .extensions()
            .get::<MatchedPath>()
            .map_or(SharedString::const_str(UNMATCHED), |path| {
                SharedString::from(path.as_str().to_owned())
            });
        metrics::counter!(
            "http_requests_total",
            "method" => self.method.clone(),
            "route" => route.clone(),
            "status" => status_label(status),
        )
        .increment(1);
        metrics::histogram!(
            "http_request_duration_seconds",
            "method" => self.method.clone(),
            "route" => route.clone(),
        )
        .record(elapsed.as_secs_f64());

        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let (status, route) = (status.as_u16(), route.as_ref());
        if response.status().is_server_error() {
            tracing::warn!(status, route, latency_ms, "request failed");
        } else {
            tracing::info!(status, route, latency_ms, "request completed");
        }
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.in_flight.decrement(1.0);
    }
}

/// The method as a label, without allocating for the standard ones.
fn method_label(method: &Method) -> SharedString {
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];
    const NAMES: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    match known.iter().position(|m| m == method) {
        Some(index) => SharedString::const_str(NAMES[index]),
        None => SharedString::from(method.as_str().to_owned()),
    }
}

/// The status code as a label, without allocating for the usual ones.
fn status_label(status: StatusCode) -> SharedString {
    const USUAL: [(u16, &str); 16] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (409, "409"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
    ];
    match USUAL.iter().find(|(code, _)| *code == status.as_u16()) {
        Some((_, name)) => SharedString::const_str(name),
        None => SharedString::from(status.as_u16().to_string()),
    }
}
