//! A Redis Cluster of the test's own: masters with a replica each, from the installed
//! `redis-server`, formed with `redis-cli --cluster create`, in a temporary directory.
//! For what the event bus and the limiter must do on a cluster, and when a master
//! dies.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::redis_server::{wait_for_port, wait_until_synced};

/// How long a node may be unreachable before its replica takes over (the cluster's
/// `cluster-node-timeout`): short, so a failover test does not wait long.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running cluster; every node is killed when it is dropped.
pub struct TestRedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl TestRedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits until every
    /// node says the cluster is ready (`cluster_state:ok`) and knows every replica.
    pub async fn start(masters: usize, replicas: usize) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut nodes = Vec::new();
        for port in cluster_ports(masters * (1 + replicas)) {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args([
                    "--cluster-node-timeout",
                    &NODE_TIMEOUT.as_millis().to_string(),
                ])
                .args([
                    "--appendonly",
                    "yes",
                    "--appendfilename",
                    &format!("{port}.aof"),
                ])
                .args(["--appenddirname", &format!("aof-{port}"), "--save", ""])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start redis-server (is it installed?)");
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &nodes {
            wait_for_port(node.port).await;
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("run redis-cli (is it installed?)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes, _dir: dir };
        for index in 0..cluster.nodes.len() {
            cluster.wait_until_formed(index, masters * replicas).await;
        }
        // A replica whose first sync never finished would not take its master's place.
        for index in 0..cluster.nodes.len() {
            wait_until_synced(&cluster.urls()[index]).await;
        }
        cluster
    }

    /// Every node's URL (`redis://127.0.0.1:<port>`): the seeds a cluster client is
    /// given.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// The cluster's URL for a client, every node a seed
    /// (`redis+cluster://127.0.0.1:<port>,...`).
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The index of the node that is master of `key`'s slot, as node `asked` sees it.
    pub async fn master_of(&self, key: &str, asked: usize) -> usize {
        let client = redis::Client::open(self.urls()[asked].as_str()).expect("a node's URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("a node answers");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("CLUSTER KEYSLOT");
        let (_, nodes) = self.info(asked).await;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let serves = fields.iter().skip(8).any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                match (low.parse::<u16>(), high.parse::<u16>()) {
                    (Ok(low), Ok(high)) => (low..=high).contains(&slot),
                    _ => false,
                }
            });
            if fields.get(2).is_some_and(|f| f.contains("master")) && serves {
                let address = fields[1].split('@').next().unwrap_or_default();
                if let Some(index) = self
                    .urls()
                    .iter()
                    .position(|url| url.trim_start_matches("redis://") == address)
                {
                    return index;
                }
            }
        }
        panic!("no master serves slot {slot} of {key}");
    }

    /// Waits (up to 30 s) until node `asked` marks node `dead` failed and every slot
    /// is served by a live master again (the dead master's replica took its place);
    /// `false` if that never happens.
    pub async fn wait_for_failover(&self, dead: usize, asked: usize) -> bool {
        let dead_address = self.urls()[dead].trim_start_matches("redis://").to_owned();
        for _ in 0..600 {
            let (info, nodes) = self.info(asked).await;
            let lines: Vec<Vec<&str>> = nodes
                .lines()
                .map(|line| line.split(' ').collect())
                .collect();
            let failed = |fields: &Vec<&str>| fields.get(2).is_some_and(|f| f.contains("fail"));
            let dead_failed = lines.iter().any(|fields| {
                fields.get(1).is_some_and(|a| a.starts_with(&dead_address)) && failed(fields)
            });
            let failed_master_serves = lines
                .iter()
                .any(|fields| failed(fields) && fields.len() > 8);
            if dead_failed && !failed_master_serves && info.contains("cluster_state:ok") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `CLUSTER INFO` and `CLUSTER NODES` as node `index` answers them.
    pub async fn info(&self, index: usize) -> (String, String) {
        let client = redis::Client::open(self.urls()[index].as_str()).expect("a node's URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("a node answers");
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut connection)
            .await
            .expect("CLUSTER INFO");
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut connection)
            .await
            .expect("CLUSTER NODES");
        (info, nodes)
    }

    /// Kills node `index` (SIGKILL, as a crash).
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Waits until node `index` says the cluster is ready and lists `replicas`
    /// replicas (the replicas are assigned after the slots, and told by gossip).
    async fn wait_until_formed(&self, index: usize, replicas: usize) {
        for _ in 0..400 {
            let (info, nodes) = self.info(index).await;
            let known = nodes
                .lines()
                .filter(|line| line.split(' ').nth(2).is_some_and(|f| f.contains("slave")))
                .count();
            if info.contains("cluster_state:ok") && known == replicas {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the cluster did not form on port {}",
            self.nodes[index].port
        );
    }
}

/// `count` free loopback ports whose cluster bus ports (each plus 10000) are free too.
fn cluster_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    // Ports from a range whose bus ports stay below 65536; held until all are chosen
    // so none is picked twice.
    let mut held = Vec::new();
    let mut candidate = 20_000 + (std::process::id() % 500) as u16 * 20;
    while ports.len() < count && candidate < 55_000 {
        let port = std::net::TcpListener::bind(("127.0.0.1", candidate));
        let bus = std::net::TcpListener::bind(("127.0.0.1", candidate + 10_000));
        if let (Ok(port), Ok(bus)) = (port, bus) {
            ports.push(candidate);
            held.push((port, bus));
        }
        candidate += 1;
    }
    assert_eq!(ports.len(), count, "not enough free ports for a cluster");
    ports
}
