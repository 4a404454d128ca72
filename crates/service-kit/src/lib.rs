//! What every Switchyard service binary shares, so that each service is only its routes,
//! its domain and its storage.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment into clap structs (so `--help` documents
//!   every variable) and the one-line start-up error for a missing or malformed one.
//! - [`telemetry`]: `tracing` set up from `RUST_LOG` and `LOG_FORMAT` (`pretty` or one JSON
//!   object a line).
//! - [`server`]: a [`server::Server`] built from a bound listener and a router, served by
//!   axum; it drains in-flight requests on SIGTERM/SIGINT and stops its background tasks
//!   with it.
//! - [`middleware`]: the one stack of tower layers every service runs behind (request id,
//!   trace, access log and metrics, problem+json for every error, timeout, and
//!   tower-http's panic catching, body limit and sensitive headers).
//! - [`problem`]: the RFC 9457 error type every handler returns; [`json`]: a JSON
//!   extractor whose rejections are problems too.
//! - [`ops`]: `/healthz`, `/readyz` (with the dependencies a service declares) and
//!   `/metrics`.
//! - [`request_id`], [`trace_context`], [`deadline`]: what a request carries from its
//!   caller (id, W3C `traceparent` and `tracestate`, time budget), kept in task-locals
//!   so the outgoing client passes them on without the handler's help.
//! - [`otel`]: spans exported over OTLP when an endpoint is set.
//! - [`internal_auth`]: the service-key check on internal routes and the [`Caller`]
//!   identity it makes trustworthy.
//! - [`database`] and [`redis`]: connections that wait for their server at start-up;
//!   [`start`]: why a service could not start.
//!
//! [`Caller`]: internal_auth::Caller

pub mod config;
pub mod database;
pub mod deadline;
pub mod internal_auth;
pub mod json;
pub mod limit;
pub mod metrics;
pub mod middleware;
pub mod ops;
pub mod otel;
pub mod problem;
pub mod redis;
pub mod request_id;
pub mod server;
pub mod start;
pub mod telemetry;
pub mod trace_context;
pub mod wait;

pub use json::Json;
pub use problem::Problem;
