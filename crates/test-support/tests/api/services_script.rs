//! `scripts/lib/services.sh`, which `./scripts/test` uses to find or start PostgreSQL
//! and Redis. Aimed at ports where nothing listens, it must start throwaway servers that
//! answer and leave nothing behind, or, without the server binaries, fail at once saying
//! what to install.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bash running the library with the probe ports aimed at nothing.
fn script(body: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "set -euo pipefail\nsource scripts/lib/services.sh\n{body}"
        ))
        .current_dir(repo_root())
        .env_remove("TEST_DATABASE_URL")
        .env_remove("TEST_REDIS_URL")
        .env("SWITCHYARD_PG_DEFAULT_PORT", unused_port().to_string())
        .env("SWITCHYARD_REDIS_DEFAULT_PORT", unused_port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn installed(binary: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false)
        || std::fs::read_dir("/usr/lib/postgresql")
            .map(|versions| {
                versions
                    .flatten()
                    .any(|v| v.path().join("bin").join(binary).is_file())
            })
            .unwrap_or(false)
}

#[tokio::test]
async fn with_nothing_listening_it_starts_servers_that_answer_and_removes_them_on_exit() {
    if !(installed("initdb") && installed("pg_ctl") && installed("redis-server")) {
        // Without the binaries the specified behaviour is the clear failure instead.
        let output = script("ensure_postgres\nensure_redis")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("is not installed") || stderr.contains("are not installed"),
            "{stderr}"
        );
        return;
    }

    let mut child = script(
        "trap stop_services EXIT\nensure_postgres\nensure_redis\n\
         echo \"$TEST_DATABASE_URL\"\necho \"$TEST_REDIS_URL\"\necho \"$SERVICES_TMP\"\nread -r _",
    )
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let read = async {
        let database_url = stdout.next_line().await.unwrap()?;
        let redis_url = stdout.next_line().await.unwrap()?;
        let tmp = stdout.next_line().await.unwrap()?;
        Some((database_url, redis_url, tmp))
    };
    let started = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the servers started in time");
    let Some((database_url, redis_url, tmp)) = started else {
        // The script stopped before saying where its servers are: say why.
        let mut said = String::new();
        stderr.read_to_string(&mut said).await.unwrap();
        panic!("the script ended early:\n{said}");
    };

    let mut connection = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(one, 1);
    connection.close().await.unwrap();

    let redis_addr = redis_url.trim_start_matches("redis://").to_owned();
    let mut redis = tokio::net::TcpStream::connect(&redis_addr).await.unwrap();
    redis.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    redis.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    drop(redis);
    assert!(Path::new(&tmp).is_dir());

    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"stop\n")
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the script exits")
        .unwrap();
    assert!(status.success());

    assert!(!Path::new(&tmp).exists(), "{tmp} was left behind");
    let pg_port = database_url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        tokio::net::TcpStream::connect(format!("127.0.0.1:{pg_port}"))
            .await
            .is_err(),
        "PostgreSQL still listens"
    );
    assert!(
        tokio::net::TcpStream::connect(&redis_addr).await.is_err(),
        "Redis still listens"
    );
    let leftovers = Command::new("pgrep").arg("-f").arg(&tmp).output().await;
    if let Ok(leftovers) = leftovers {
        assert!(
            leftovers.stdout.is_empty(),
            "processes left: {}",
            String::from_utf8_lossy(&leftovers.stdout)
        );
    }
}

/// A PATH with the tools the script needs but no database or Redis server.
fn path_without_servers() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tool in [
        "bash", "mktemp", "chmod", "seq", "cat", "ls", "sort", "id", "dirname", "sleep", "rm",
        "mkdir",
    ] {
        let found = ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file());
        if let Some(found) = found {
            std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn without_redis_server_it_fails_at_once_saying_what_to_install() {
    let path = path_without_servers();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        script("ensure_redis").env("PATH", path.path()).output(),
    )
    .await
    .expect("it fails at once")
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("redis-server is not installed"), "{stderr}");
    assert!(stderr.contains("apt-get install redis-server"), "{stderr}");
    assert!(
        stderr.contains("docker compose up -d postgres redis"),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_postgresql_binaries_it_fails_at_once_saying_what_to_install() {
    let path = path_without_servers();
    let empty = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        script("ensure_postgres")
            .env("PATH", path.path())
            .env("SWITCHYARD_PG_LIB_DIR", empty.path())
            .output(),
    )
    .await
    .expect("it fails at once")
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("(initdb, pg_ctl) are not installed"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
}
