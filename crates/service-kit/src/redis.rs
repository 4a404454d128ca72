//! Redis, a single server or a cluster, behind one connection type.
//!
//! `REDIS_URL` names either one server (`redis://host:port`, `rediss://` for TLS) or a
//! Redis Cluster by some of its nodes (`redis+cluster://host:port,host:port`,
//! `rediss+cluster://` for TLS; credentials and query as in `redis://`, given once for
//! every node). The nodes are seeds: the client learns the rest of the cluster from
//! them and follows its topology as masters fail over.
//!
//! [`Connection`] is what every Redis user in the project holds: one multiplexed
//! connection, cheap to clone, that re-establishes itself (after a restart, a failover)
//! and, on a cluster, sends each command to the node serving its key. Code written for
//! it runs unchanged on both, provided no command or pipeline names keys of two slots
//! (see [`same_slot`]).

use std::time::Duration;

use crate::start::StartError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::wait::wait_for;

/// The scheme of a cluster URL, and of a cluster URL over TLS.
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// Whether `url` names a Redis Cluster.
pub fn is_cluster_url(url: &str) -> bool {
    CLUSTER_SCHEMES
        .iter()
        .any(|(scheme, _)| url.starts_with(scheme))
}

/// A client for one server or for a cluster, as `REDIS_URL` says.
#[derive(Clone)]
pub enum Client {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// A connection to one server or to a cluster; see the [module](self).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Client {
    /// A client for `url`, whose connections send each command at once (`TCP_NODELAY`).
    ///
    /// redis-rs leaves Nagle's algorithm on: a command written while an earlier one is
    /// still unacknowledged waits for that acknowledgement, which a request-and-reply
    /// protocol pays in latency (the gateway's rate-limit calls, the event bus's reads).
    pub fn open(url: &str) -> RedisResult<Self> {
        let nodelay = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let Some(nodes) = cluster_nodes(url) else {
            let info =
                redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(nodelay);
            return redis::Client::open(info).map(Self::Single);
        };
        let nodes = nodes
            .iter()
            .map(|node| redis::IntoConnectionInfo::into_connection_info(node.as_str()))
            .collect::<RedisResult<Vec<_>>>()?;
        // A command whose node is gone fails within seconds rather than retrying for
        // minutes: its caller has a backoff of its own (the relay, the consumers), and
        // a failover takes a few seconds.
        ClusterClient::builder(nodes)
            .tcp_settings(nodelay)
            .retries(4)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(5))
            .build()
            .map(|client| Self::Cluster(Box::new(client)))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A new connection whose answers may take up to `response_timeout` (blocking
    /// reads need longer than the default).
    pub async fn connect_with_timeout(
        &self,
        response_timeout: Duration,
    ) -> RedisResult<Connection> {
        match self {
            Self::Single(client) => ConnectionManager::new_with_config(
                client.clone(),
                ConnectionManagerConfig::new().set_response_timeout(Some(response_timeout)),
            )
            .await
            .map(Connection::Single),
            Self::Cluster(client) => client
                .get_async_connection_with_config(
                    ClusterConfig::new().set_response_timeout(response_timeout),
                )
                .await
                .map(Connection::Cluster),
        }
    }

    /// A new connection with the default response timeout.
    pub async fn connect(&self) -> RedisResult<Connection> {
        match self {
            Self::Single(client) => ConnectionManager::new(client.clone())
                .await
                .map(Connection::Single),
            Self::Cluster(client) => client.get_async_connection().await.map(Connection::Cluster),
        }
    }
}

impl Connection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs `command`, which names no key, on the node that serves `key` (on a single
    /// server, on it): e.g. `ROLE` or `WAIT` about the node a stream lives on.
    pub async fn query_on_node_of(&mut self, key: &str, command: Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(connection) => command.query_async(connection).await,
            Self::Cluster(connection) => {
                let route = Route::with_key(key, SlotAddr::Master);
                connection
                    .route_command(
                        command,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
            }
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Whether keys `a` and `b` live in the same cluster slot (by their hash tags), so one
/// command, transaction or pipeline may name both.
pub fn same_slot(a: &str, b: &str) -> bool {
    redis::cluster_routing::Slot::for_key(a) == redis::cluster_routing::Slot::for_key(b)
}

/// The seed nodes of a cluster URL as `redis://` (or `rediss://`) URLs, each with the
/// URL's credentials and query; `None` if `url` names a single server.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, single) = CLUSTER_SCHEMES
        .iter()
        .find(|(scheme, _)| url.starts_with(scheme))?;
    let rest = &url[scheme.len()..];
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(end) => rest.split_at(end),
        None => (rest, ""),
    };
    let (credentials, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| format!("{single}{credentials}{host}{tail}"))
            .collect(),
    )
}

/// Connects to `url` (`REDIS_URL`), waiting up to `timeout` for Redis to come up.
pub async fn connect(url: &str, timeout: Duration) -> Result<Connection, StartError> {
    let client = Client::open(url).map_err(StartError::RedisUrl)?;
    wait_for("redis", timeout, || client.connect())
        .await
        .map_err(|cause| StartError::Redis {
            seconds: timeout.as_secs(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_each_seed_with_the_shared_credentials_and_query() {
        assert_eq!(
            cluster_nodes("redis+cluster://user:secret@a:7000,b:7001/?protocol=resp3"),
            Some(vec![
                "redis://user:secret@a:7000/?protocol=resp3".to_owned(),
                "redis://user:secret@b:7001/?protocol=resp3".to_owned(),
            ])
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://a:7000"),
            Some(vec!["rediss://a:7000".to_owned()])
        );
        assert_eq!(cluster_nodes("redis://a:6379"), None);
    }

    #[test]
    fn a_cluster_url_opens_a_cluster_client_and_a_plain_one_a_single_server() {
        assert!(
            Client::open("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
                .unwrap()
                .is_cluster()
        );
        assert!(!Client::open("redis://127.0.0.1:6379").unwrap().is_cluster());
        assert!(Client::open("redis+cluster://").is_err());
    }

    #[test]
    fn keys_with_one_hash_tag_share_a_slot() {
        assert!(same_slot("{events:order:1}", "{events:order:1}:dead"));
        assert!(!same_slot("events:order", "events:order:dead"));
    }
}
