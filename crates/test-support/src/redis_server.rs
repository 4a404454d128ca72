//! A Redis server of the test's own, to stop and start again: for what happens to
//! clients when Redis goes away.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A `redis-server` on a free loopback port, with an append-only file in a temporary
/// directory so a restart keeps its data, as a production Redis would.
pub struct TestRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The server this one replicates, if a replica.
    replica_of: Option<u16>,
}

impl TestRedis {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a replica of `master` and waits until it has synced.
    pub async fn start_replica_of(master: &TestRedis) -> Self {
        let replica = Self::start_with(Some(master.port)).await;
        wait_until_synced(&replica.url()).await;
        replica
    }

    /// Stops the process where it is (SIGSTOP): connected, answering nothing, as a
    /// stalled or partitioned server.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("the server is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("signal redis-server");
    }

    async fn start_with(replica_of: Option<u16>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().expect("temporary directory"),
            child: None,
            replica_of,
        };
        redis.start_again().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Starts the server again (after [`TestRedis::stop`]) on the same port and data.
    pub async fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(
                self.replica_of
                    .map(|master| {
                        vec![
                            "--replicaof".to_owned(),
                            "127.0.0.1".to_owned(),
                            master.to_string(),
                        ]
                    })
                    .unwrap_or_default(),
            )
            .arg("--dir")
            .arg(self.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    /// Stops the server (as a crash would: SIGKILL; the append-only file keeps every
    /// acknowledged write).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
}

/// Waits until the server at `url`, if a replica, is in sync with its master.
pub(crate) async fn wait_until_synced(url: &str) {
    let client = redis::Client::open(url).expect("a server's URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the server answers");
    for _ in 0..400 {
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .expect("INFO replication");
        if replication.contains("role:master") || replication.contains("master_link_status:up") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica at {url} never synced");
}

/// Waits until a `redis-server` just started accepts connections on `port`.
pub(crate) async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("redis-server did not start on port {port}");
}

/// The Redis tests use: `TEST_REDIS_URL` (a server, or a cluster by a
/// `redis+cluster://` URL: `./scripts/test` runs the bus's and the saga's tests on
/// both), else the local default.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A client for [`redis_url`], a server or a cluster.
pub fn redis_client() -> service_kit::redis::Client {
    service_kit::redis::Client::open(&redis_url()).expect("TEST_REDIS_URL is a valid Redis URL")
}

/// A connection to [`redis_url`].
pub async fn redis() -> service_kit::redis::Connection {
    redis_client()
        .connect()
        .await
        .expect("the test Redis answers")
}

/// Deletes `keys` from [`redis_url`], without an async runtime (for `Drop`); on a
/// cluster each key on its own node. Errors are ignored: this is tidying up.
pub fn delete_keys(keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    with_blocking_connection(|connection| {
        for key in keys {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query(connection);
        }
    });
}

/// Deletes every key of [`redis_url`] matching `pattern` (on a cluster, on every
/// master), without an async runtime.
pub fn delete_keys_matching(pattern: &str) {
    let mut keys: Vec<String> = Vec::new();
    with_blocking_connection(|connection| {
        keys = redis::cmd("KEYS")
            .arg(pattern)
            .query(connection)
            .unwrap_or_default();
    });
    delete_keys(&keys);
}

fn with_blocking_connection(use_it: impl FnOnce(&mut dyn redis::ConnectionLike)) {
    match redis_client() {
        service_kit::redis::Client::Single(client) => {
            if let Ok(mut connection) = client.get_connection() {
                use_it(&mut connection);
            }
        }
        service_kit::redis::Client::Cluster(client) => {
            if let Ok(mut connection) = client.get_connection() {
                use_it(&mut connection);
            }
        }
    }
}
