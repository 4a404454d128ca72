//! A service binary run as a real process, for what only a process shows: `--help`,
//! start-up errors, signals, log output.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running service process with its stdout captured.
pub struct ServiceProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    // Holds the empty working directory alive: no stray `.env` is read from it.
    _workdir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `binary` with exactly `env` (plus PATH), in an empty working directory,
    /// with JSON logs.
    pub fn start(binary: impl AsRef<Path>, env: &HashMap<String, String>) -> Self {
        let workdir = tempfile::tempdir().expect("temporary working directory");
        let mut command = Command::new(binary.as_ref());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .envs(env)
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the service binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().expect("log lines").push(line);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(err).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    stderr.lock().expect("stderr lines").push(line);
                }
            });
        }
        Self {
            child,
            lines,
            stderr,
            _workdir: workdir,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A line of `/proc/<pid>/status`, in KiB (e.g. `VmRSS`, `VmHWM`); Linux only.
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        self.proc_kib("status", field)
    }

    /// A line of `/proc/<pid>/smaps_rollup`, in KiB (e.g. `Pss`: resident memory with
    /// each page shared with other processes counted as its share); Linux only.
    pub fn mappings_kib(&self, field: &str) -> Option<u64> {
        self.proc_kib("smaps_rollup", field)
    }

    fn proc_kib(&self, file: &str, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.pid()?)).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits for the "listening" log line and returns the base URL it names.
    pub async fn wait_until_listening(&mut self, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let addr = self.log_lines().into_iter().find_map(|line| {
                (line["message"] == "listening")
                    .then(|| line["addr"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(addr) = addr {
                let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
                return format!("http://127.0.0.1:{port}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service exited with {status} before listening; stderr: {:?}; stdout: {:?}",
                    self.stderr_lines(),
                    self.raw_lines()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service did not start listening in time; stdout: {:?}",
                self.raw_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every stdout line so far that parsed as JSON.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.raw_lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Every stdout line so far, as printed.
    pub fn raw_lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }

    /// Every stderr line so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lines").clone()
    }

    /// Sends SIGKILL and waits for the process to be gone: a crash, with no drain.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("send SIGKILL");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM, as an orchestrator does to stop a container.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the process is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

/// A binary of this workspace, built beside the running test or tool
/// (`target/<profile>/`).
///
/// Cargo hands a test the path of its own package's binaries only; whole-system tests
/// run every service's, which `cargo test --workspace` (and nextest) build before any
/// test runs.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the running program's own path");
    // A test runs from target/<profile>/deps, a tool (a bench driver) from
    // target/<profile>; the binaries are in target/<profile>.
    let mut profile_dir = exe.parent().expect("the program has a directory");
    if profile_dir.file_name().is_some_and(|name| name == "deps") {
        profile_dir = profile_dir.parent().expect("deps has a parent");
    }
    let binary = profile_dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        binary.display()
    );
    binary
}
