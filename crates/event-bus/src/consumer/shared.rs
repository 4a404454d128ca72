//! What every part of a consumer uses: its connections, settings and handling, the
//! group's creation, backoff after a failed command, and the group's figures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use service_kit::redis::{Client, Connection};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::config::ConsumerConfig;
use super::handler::Handling;

/// What every part of a consumer uses.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) commands: OnceCell<Connection>,
    pub(super) config: ConsumerConfig,
    pub(super) handling: Handling,
    /// The last error per entry, for the dead letter.
    pub(super) errors: Mutex<HashMap<String, String>>,
}

impl Shared {
    /// The connection for every command but blocking reads.
    pub(super) async fn commands(&self) -> redis::RedisResult<Connection> {
        self.commands
            .get_or_try_init(|| self.client.connect())
            .await
            .cloned()
    }

    /// A new connection for one read loop's blocking reads, whose answers may take the
    /// whole `block`.
    pub(super) async fn reads(&self) -> redis::RedisResult<Connection> {
        let timeout = self.config.block + Duration::from_secs(5);
        self.client.connect_with_timeout(timeout).await
    }

    pub(super) async fn ensure_groups(&self) -> redis::RedisResult<()> {
        let mut redis = self.commands().await?;
        for stream in &self.config.streams {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.config.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut redis)
                .await;
            match created {
                Ok(()) => {}
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Creates the groups, retrying with capped backoff while Redis is down; `false` if
    /// cancelled first.
    pub(super) async fn create_groups_patiently(&self, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new();
        loop {
            match self.ensure_groups().await {
                Ok(()) => return true,
                Err(error) => {
                    if !backoff.wait(&self.config.group, &error, cancel).await {
                        return false;
                    }
                }
            }
        }
    }

    /// After a command failed: recreates the groups if Redis lost them.
    pub(super) async fn recover(&self, error: &redis::RedisError) {
        if error.code() == Some("NOGROUP")
            && let Err(error) = self.ensure_groups().await
        {
            tracing::warn!(group = %self.config.group, %error, "cannot recreate the consumer group");
        }
    }

    pub(super) fn remember_error(&self, id: &str, error: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.insert(id.to_owned(), error);
        }
    }

    pub(super) fn forget_errors<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut errors) = self.errors.lock() {
            for id in ids {
                errors.remove(id);
            }
        }
    }
}

/// Capped exponential backoff after a failed Redis command, 100 ms to 5 s.
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    pub(super) fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }

    /// Logs `error` and waits; `false` if cancelled meanwhile.
    pub(super) async fn wait(
        &mut self,
        group: &str,
        error: &redis::RedisError,
        cancel: &CancellationToken,
    ) -> bool {
        let wait = self.0;
        tracing::warn!(%group, %error, retry_in_ms = wait.as_millis() as u64, "consumer failed; retrying");
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }
}
