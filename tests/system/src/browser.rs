//! A real headless Chromium, driven over WebDriver (chromedriver, one per browser), for
//! the ops console's tests.
//!
//! `CHROMEDRIVER` and `CHROMIUM` name the binaries (default: `chromedriver` on the
//! `PATH` and `/usr/bin/chromium`); `scripts/test` installs Debian's `chromium` and
//! `chromium-driver` when they are missing. Chromium gets a fresh profile and the
//! flags that keep it off the network: it talks only to the system under test.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// A browser session; chromedriver (and with it Chromium) is killed on drop.
pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    profile: std::path::PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the Chromium it starts goes with it on drop.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {chromedriver}: {e}; install Debian's chromium and \
                     chromium-driver (./scripts/test does), or set CHROMEDRIVER"
                )
            });
        let profile = std::env::temp_dir().join(format!("console-test-{}", uuid::Uuid::new_v4()));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1200",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        profile,
                    };
                }
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver on port {port} did not start a session: {last_error}");
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Waits until `script` returns something truthy and returns it; panics with
    /// `what` and the last value after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.run(script, Vec::new()).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0)
                && value != json!([]);
            if truthy {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not seen within {timeout:?} (last: {value})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
