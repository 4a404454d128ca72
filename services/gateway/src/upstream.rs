//! The services behind the gateway, and the route table's lines that lead to them.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Uri};
use service_client::{CircuitBreaker, PeerConfig};

use crate::connections::Destination;

/// A service behind the gateway.
pub struct Upstream {
    pub name: &'static str,
    /// Where it listens, and its place in each worker's [`Connections`].
    pub destination: Destination,
    /// The `Host` its requests carry: the authority of its URL.
    pub(crate) host: HeaderValue,
    /// The path of its URL, without a trailing slash: what every forwarded path
    /// starts with (usually empty).
    pub(crate) base_path: String,
    /// `Bearer <the service's key>`, made once and marked sensitive so no log shows it.
    pub(crate) authorization: HeaderValue,
    pub breaker: CircuitBreaker,
    /// The breaker's slow-call time: a call abandoned after waiting this long counts
    /// as the service's failure.
    pub(crate) slow_call: Duration,
}

impl Upstream {
    /// The service `peer`, the `index`-th of the route table's.
    pub fn new(peer: &PeerConfig, index: usize) -> anyhow::Result<Self> {
        let invalid = |why: &str| {
            anyhow::anyhow!("the {} service's URL {:?} {why}", peer.name, peer.base_url)
        };
        let url: Uri = peer.base_url.parse().map_err(|_| invalid("is not a URL"))?;
        if url.scheme_str() != Some("http") {
            return Err(invalid("is not an http:// URL"));
        }
        let authority = url
            .authority()
            .filter(|a| !a.as_str().contains('@'))
            .ok_or_else(|| invalid("needs a host and no user"))?;
        if url.query().is_some() {
            return Err(invalid("has a query"));
        }
        let address = match authority.port() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.as_str()),
        };
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| invalid("has a host that is no header value"))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", peer.key.expose()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "the {} service's key is not a valid header value",
                    peer.name
                )
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            name: peer.name,
            destination: Destination { index, address },
            host,
            base_path: url.path().trim_end_matches('/').to_owned(),
            authorization,
            breaker: CircuitBreaker::new(peer.breaker.clone()),
            slow_call: peer.breaker.slow_call,
        })
    }
}

/// One line of the route table: requests under `prefix` go to `upstream`, with
/// `prefix` replaced by `target`.
pub struct Route {
    pub prefix: &'static str,
    pub target: &'static str,
    pub upstream: Arc<Upstream>,
}
