//! `scripts/run` as a user runs it: the stack comes up, the README's walkthrough pasted
//! as written ends in a confirmed order, and Ctrl-C leaves no process behind.
//!
//! The script runs the workspace's already built binaries (`RUN_BINARIES`) on free ports,
//! with databases and Redis keys of this test's own, which go when it ends.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use test_support::{StreamKeys, TestDatabase, workspace_binary};

const README: &str = include_str!("../../../../README.md");

/// The README's walkthrough through the gateway: its first shell block after the heading.
fn walkthrough() -> String {
    let section = README
        .split_once("### A walkthrough through the gateway")
        .expect("the README has the walkthrough")
        .1;
    let block = section.split_once("```sh\n").unwrap().1;
    block.split_once("```").unwrap().0.to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether any process of the group `pgid` is still alive.
fn group_alive(pgid: Pid) -> bool {
    nix::sys::signal::killpg(pgid, None).is_ok()
}

#[tokio::test]
async fn scripts_run_serves_the_readme_walkthrough_and_ctrl_c_stops_everything() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let bin_dir = workspace_binary("gateway").parent().unwrap().to_owned();
    let keys = StreamKeys::new();
    let prefix = format!("switchyard_run_{}_", uuid::Uuid::new_v4().simple());
    let _databases: Vec<TestDatabase> =
        ["users", "inventory", "payments", "orders", "notifications"]
            .iter()
            .map(|db| TestDatabase::adopt(&format!("{prefix}{db}")))
            .collect();
    let gateway_port = free_port();
    let log = tempfile_path("run.log");

    let mut command = Command::new("bash");
    command
        .arg(format!("{root}/scripts/run"))
        .env("RUN_BINARIES", &bin_dir)
        .env("DATABASE_PREFIX", &prefix)
        .env("EVENT_STREAM_PREFIX", keys.prefix())
        .env(
            "RATE_LIMIT_KEY_PREFIX",
            format!("{}ratelimit:", keys.prefix()),
        )
        .env("TEST_DATABASE_URL", test_support::database_server_url())
        .env("TEST_REDIS_URL", test_support::redis_url())
        .env("GATEWAY_PORT", gateway_port.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(format!("{log}.err")).unwrap())
        // Its own process group, as a shell gives a foreground job: Ctrl-C reaches all.
        .process_group(0);
    for service in ["USER", "INVENTORY", "PAYMENT", "ORDER", "NOTIFICATION"] {
        command.env(format!("{service}_PORT"), free_port().to_string());
    }
    let mut script = command.spawn().unwrap();
    let group = Pid::from_raw(i32::try_from(script.id()).unwrap());
    let output = || {
        format!(
            "{}{}",
            std::fs::read_to_string(format!("{log}.err")).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };

    let started = Instant::now();
    while !output().contains("Switchyard is up") {
        assert!(
            script.try_wait().unwrap().is_none(),
            "scripts/run exited: {}",
            output()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not up in time: {}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The demo products are the inventory service's own start-up step, as under compose.
    assert!(output().contains("seed products created"), "{}", output());

    let walkthrough = walkthrough().replace(
        "G=http://localhost:8080/api",
        &format!("G=http://localhost:{gateway_port}/api"),
    );
    let walked = tokio::process::Command::new("bash")
        .args(["-c", &walkthrough])
        .kill_on_drop(true)
        .output();
    let walked = tokio::time::timeout(Duration::from_secs(120), walked)
        .await
        .unwrap_or_else(|_| panic!("the walkthrough did not finish: {}", output()))
        .unwrap();
    let printed = String::from_utf8_lossy(&walked.stdout);
    assert!(
        printed.contains(r#""status":"confirmed""#),
        "the walkthrough ends in a confirmed order: {printed}\n{}",
        String::from_utf8_lossy(&walked.stderr)
    );

    // Ctrl-C: SIGINT to the whole foreground group.
    killpg(group, Signal::SIGINT).unwrap();
    let stopped = Instant::now();
    while group_alive(group) {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "processes left after Ctrl-C: {}",
            output()
        );
        let _ = script.try_wait();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = script.wait().unwrap();
    assert!(!status.success(), "interrupted, so not a success: {status}");
    let _ = std::fs::remove_file(format!("{log}.err"));
    let _ = std::fs::remove_file(&log);
}

fn tempfile_path(name: &str) -> String {
    std::env::temp_dir()
        .join(format!(
            "switchyard-{}-{name}",
            uuid::Uuid::new_v4().simple()
        ))
        .display()
        .to_string()
}
