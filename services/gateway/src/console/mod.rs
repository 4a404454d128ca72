//! The ops console: one page at `/console`, and the admin-only `/api/ops/*` endpoints
//! it reads.
//!
//! The page ([`assets`]) is static: it holds no data, so anyone may load it; it signs
//! in through the public API and sends the admin's token as a bearer header on every
//! request. The data comes from [`api`]: each service's `/ops` report (through the
//! service client, behind its key), gathered at once and merged here, plus the
//! gateway's own. Those requests pass through the proxy's front door like any
//! `/api` request, so they are verified and count against the admin's rate limit.
//! The throughput chart is drawn here as SVG ([`chart`]).
//!
//! # Layout
//!
//! - [`assets`]: the page, its script and style, with a strict CSP.
//! - [`api`]: `/api/ops/*`: services, journeys, dead-letter actions, the chart.
//! - [`chart`]: events per minute as SVG.

pub mod api;
pub mod assets;
pub mod chart;

use std::time::Duration;

use contracts::ops::OpsClient;
use service_client::Client;
use service_kit::ops::Readiness;

/// What the console's endpoints read.
pub struct Console {
    /// Every service's ops API.
    pub services: Vec<OpsClient>,
    /// The order service, for an order's creation time (a journey starts there).
    pub orders: Client,
    /// The gateway's own dependencies.
    pub readiness: Readiness,
    /// Where a trace id links to (`{url}/trace/{id}`, Jaeger's UI), if anywhere.
    pub trace_url: Option<String>,
    /// How long one service may take to answer.
    pub timeout: Duration,
}
