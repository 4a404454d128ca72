//! The public API's route table, as data: which prefix goes to which service (by
//! name) and at which path there, which the gateway answers itself, and what anyone
//! may call without a token. Every `/api` request is looked up here once; adding a
//! route or a service is a line of [`TABLE`] (and, for a service, its peer settings
//! in [`crate::config::Config::services`]).

use std::sync::Arc;

use anyhow::Context;
use axum::http::Method;

use crate::upstream::{Route, Upstream};

/// What a line of the table leads to.
#[derive(Debug, Clone, Copy)]
pub enum Serves {
    /// The service `service`, with the line's prefix replaced by `path`.
    Service {
        service: &'static str,
        path: &'static str,
    },
    /// The gateway's own endpoints ([`crate::endpoints`]), after the same front door.
    Gateway,
}

/// One line: requests at `prefix` or under `prefix/` are `serves`'.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub prefix: &'static str,
    pub serves: Serves,
}

const fn service(prefix: &'static str, service: &'static str, path: &'static str) -> Line {
    Line {
        prefix,
        serves: Serves::Service { service, path },
    }
}

const fn gateway(prefix: &'static str) -> Line {
    Line {
        prefix,
        serves: Serves::Gateway,
    }
}

/// The route table (API.md). The services' lines come first: they are the most asked.
pub const TABLE: &[Line] = &[
    service("/api/auth", "user", "/auth"),
    service("/api/users", "user", "/users"),
    service("/api/orders", "order", "/orders"),
    service("/api/products", "inventory", "/products"),
    service("/api/payments", "payment", "/payments"),
    service("/api/notifications", "notification", "/notifications"),
    service("/api/webhooks", "notification", "/webhooks"),
    gateway(DASHBOARD_PATH),
    gateway(OPS_PREFIX),
    gateway(OPENAPI_PATH),
    gateway(ASYNCAPI_PATH),
];

/// The routes anyone may call without a token.
pub const PUBLIC: &[(Method, &str)] = &[
    (Method::POST, "/api/auth/register"),
    (Method::POST, "/api/auth/login"),
    (Method::GET, "/api/auth/jwks"),
    (Method::GET, OPENAPI_PATH),
    (Method::GET, ASYNCAPI_PATH),
];

/// The aggregated view's path.
pub const DASHBOARD_PATH: &str = "/api/dashboard";

/// The ops console's API, under this prefix.
pub const OPS_PREFIX: &str = "/api/ops";

/// Where the OpenAPI document of the public API is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// Where the AsyncAPI document of the events is served.
pub const ASYNCAPI_PATH: &str = "/api/asyncapi.json";

/// A line of the table with its service found.
pub enum Resolved {
    Service(Route),
    /// The gateway's own, at this prefix.
    Gateway(&'static str),
}

impl Resolved {
    /// The line's prefix: the route's label in metrics and spans.
    pub fn prefix(&self) -> &'static str {
        match self {
            Self::Service(route) => route.prefix,
            Self::Gateway(prefix) => prefix,
        }
    }
}

/// [`TABLE`] with each service line's upstream, found by name among `upstreams`.
pub fn resolve(upstreams: &[Arc<Upstream>]) -> anyhow::Result<Vec<Resolved>> {
    TABLE
        .iter()
        .map(|line| match line.serves {
            Serves::Service { service, path } => {
                let upstream = upstreams
                    .iter()
                    .find(|upstream| upstream.name == service)
                    .with_context(|| {
                        format!("{} leads to {service}, which is no peer", line.prefix)
                    })?;
                Ok(Resolved::Service(Route {
                    prefix: line.prefix,
                    target: path,
                    upstream: upstream.clone(),
                }))
            }
            Serves::Gateway => Ok(Resolved::Gateway(line.prefix)),
        })
        .collect()
}

/// The line of `routes` the canonical `path` is at or under.
pub fn find<'a>(routes: &'a [Resolved], path: &str) -> Option<&'a Resolved> {
    routes.iter().find(|line| {
        path.strip_prefix(line.prefix())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether anyone may call `method` at the canonical `path`.
pub fn is_public(method: &Method, path: &str) -> bool {
    PUBLIC.iter().any(|(m, p)| m == method && *p == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_itself_and_what_is_under_it_only() {
        let routes: Vec<Resolved> = TABLE
            .iter()
            .map(|line| Resolved::Gateway(line.prefix))
            .collect();
        let at = |path| find(&routes, path).map(Resolved::prefix);
        assert_eq!(at("/api/orders"), Some("/api/orders"));
        assert_eq!(at("/api/orders/1/cancel"), Some("/api/orders"));
        assert_eq!(at("/api/ordersx"), None);
        assert_eq!(at("/api/ops/services"), Some(OPS_PREFIX));
        assert_eq!(at("/api"), None);
    }

    #[test]
    fn every_public_route_is_in_the_table() {
        for (_, path) in PUBLIC {
            assert!(
                TABLE.iter().any(|line| path.starts_with(line.prefix)),
                "{path}"
            );
        }
    }
}
