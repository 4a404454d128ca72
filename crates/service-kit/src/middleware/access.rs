//! The access log and the HTTP metrics: one line and one observation per request.
//!
//! Metrics are labelled by route template (`/users/{id}`), never by raw path, so a
//! scanner walking random URLs cannot blow up the number of series.

use std::cell::RefCell;
use std::collections::HashMap;
use tokio::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram, SharedString};

/// Label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Names the route a response was served by (for metrics and span names): a template
/// or a fixed label, never the raw path. [`route_of`] for a router's routes; a service
/// routing by itself names its own.
pub type RouteOf = for<'a> fn(&'a Response) -> Option<&'a str>;

/// The route template `response` was served by, if a router matched one.
pub fn route_of(response: &Response) -> Option<&str> {
    response
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

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
    method: usize,
    started: Instant,
    in_flight: Gauge,
}

impl Observation {
    /// Observes `request`, which arrived at `now` (the caller's clock reading, so the
    /// stack reads the clock once per request).
    pub fn begin(request: &Request, now: Instant) -> Self {
        let in_flight = Series::in_flight();
        in_flight.increment(1.0);
        Self {
            method: method_index(request.method()),
            started: now,
            in_flight,
        }
    }

    /// Logs and records the request's outcome, served by `route`.
    pub fn finish(self, response: &Response, route: Option<&str>) {
        let elapsed = self.started.elapsed();
        let status = response.status();
        let route = route.unwrap_or(UNMATCHED);
        Series::record(self.method, route, status, elapsed.as_secs_f64());

        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let status = status.as_u16();
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

/// Methods with a label of their own; any other is labelled `_OTHER` (as OpenTelemetry
/// does), so made-up methods cannot add series without end.
const METHODS: [(Method, &str); 7] = [
    (Method::GET, "GET"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
    (Method::PATCH, "PATCH"),
    (Method::DELETE, "DELETE"),
    (Method::HEAD, "HEAD"),
    (Method::OPTIONS, "OPTIONS"),
];
const OTHER_METHOD: usize = METHODS.len();

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|(known, _)| known == method)
        .unwrap_or(OTHER_METHOD)
}

fn method_label(index: usize) -> SharedString {
    SharedString::const_str(METHODS.get(index).map_or("_OTHER", |(_, name)| name))
}

thread_local! {
    /// This thread's handles to the HTTP series, so a request costs a lookup here
    /// rather than building a labelled key and finding it in the global registry.
    /// Bounded: routes are the router's templates, methods the eight labels, statuses
    /// three digits.
    static SERIES: RefCell<Series> = RefCell::new(Series::default());
}

/// The handles one thread has used.
#[derive(Default)]
struct Series {
    in_flight: Option<Gauge>,
    routes: HashMap<Box<str>, RouteSeries>,
}

/// One route's handles: a duration histogram per method, a counter per method and status.
#[derive(Default)]
struct RouteSeries {
    durations: [Option<Histogram>; OTHER_METHOD + 1],
    totals: Vec<(usize, StatusCode, Counter)>,
}

impl Series {
    fn in_flight() -> Gauge {
        let gauge = || metrics::gauge!("http_requests_in_flight");
        if !crate::metrics::installed() {
            return gauge();
        }
        SERIES.with_borrow_mut(|series| series.in_flight.get_or_insert_with(gauge).clone())
    }

    fn record(method: usize, route: &str, status: StatusCode, seconds: f64) {
        let total = || {
            metrics::counter!(
                "http_requests_total",
                "method" => method_label(method),
                "route" => SharedString::from(route.to_owned()),
                "status" => status_label(status),
            )
        };
        let duration = || {
            metrics::histogram!(
                "http_request_duration_seconds",
                "method" => method_label(method),
                "route" => SharedString::from(route.to_owned()),
            )
        };
        if !crate::metrics::installed() {
            total().increment(1);
            duration().record(seconds);
            return;
        }
        SERIES.with_borrow_mut(|series| {
            let handles = match series.routes.get_mut(route) {
                Some(handles) => handles,
                None => series.routes.entry(route.into()).or_default(),
            };
            match handles
                .totals
                .iter()
                .find(|(m, s, _)| (*m, *s) == (method, status))
            {
                Some((_, _, counter)) => counter.increment(1),
                None => {
                    let counter = total();
                    counter.increment(1);
                    handles.totals.push((method, status, counter));
                }
            }
            if let Some(slot) = handles.durations.get_mut(method) {
                slot.get_or_insert_with(duration).record(seconds);
            }
        });
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
