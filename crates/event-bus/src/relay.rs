//! Publishes committed outbox rows to Redis and marks them.
//!
//! One relay runs in every replica of a service; an advisory lock lets one of them
//! publish at a time, which keeps each stream in commit order. The relay is woken in
//! process by the commits that wrote rows ([`Wake`]), so events leave within a round
//! trip of their commit; it sweeps every `poll_interval` for rows no wake announced
//! (another replica's, a crash between commit and publishing), waits out Redis outages
//! with capped backoff, and prunes rows published longer ago than the retention.
//!
//! Publishing is at least once: if marking fails after `XADD` succeeded, or the mark is
//! lost (it commits without waiting for the disk: losing it costs a republish, never an
//! event), the rows are published again, and consumers' inboxes drop the duplicates.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbox::Wake;
use crate::publisher::Publisher;

const LOCK: i64 = 0x5357_5245_4c59; // "SWRELY"

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows published per round trip.
    pub batch_size: i64,
    /// How often to sweep for rows no wake announced.
    pub poll_interval: Duration,
    /// Published rows older than this are deleted.
    pub retention: Duration,
    /// Longest wait between attempts while Redis or Postgres is failing.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The outbox relay of one service.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    publisher: Publisher,
    config: RelayConfig,
    wake: Wake,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Published this many rows.
    Published(usize),
    /// Another relay holds the lock.
    Busy,
}

impl Relay {
    /// A relay woken by `wake`'s commits.
    pub fn new(pool: PgPool, publisher: Publisher, config: RelayConfig, wake: Wake) -> Self {
        Self {
            pool,
            publisher,
            config,
            wake,
        }
    }

    /// Publishes one batch of unpublished rows, oldest first.
    pub async fn publish_pending(&self) -> anyhow::Result<Pass> {
        let mut tx = self.pool.begin().await?;
        // The lock, and a commit that does not wait for the disk: the transaction only
        // marks rows published, and a lost mark is a harmless republish.
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock($1)
                    AND set_config('synchronous_commit', 'off', true) = 'off'",
        )
        .bind(LOCK)
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(Pass::Busy);
        }
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, stream, envelope::text FROM outbox
             WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Pass::Published(0));
        }
        let seqs: Vec<i64> = rows.iter().map(|(seq, _, _)| *seq).collect();
        let entries: Vec<(String, String)> = rows
            .into_iter()
            .map(|(_, stream, envelope)| (stream, envelope))
            .collect();
        self.publisher.xadd(&entries).await?;
        sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Pass::Published(seqs.len()))
    }

    /// Deletes rows published longer ago than the retention.
    pub async fn prune(&self) -> sqlx::Result<u64> {
        let secs = self.config.retention.as_secs_f64();
        let result = sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Runs until `cancel`, then returns after the batch in hand.
    pub async fn run(self, cancel: CancellationToken) {
        let mut woken = self.wake.watch();
        let mut backoff = Duration::from_millis(50);
        let mut last_prune = Instant::now();
        while !cancel.is_cancelled() {
            // Rows committed from here on are this pass's or wake the next one.
            woken.mark_unchanged();
            let wait = match self.publish_pending().await {
                Ok(Pass::Published(n)) if n as i64 >= self.config.batch_size => {
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Ok(Pass::Published(_)) => {
                    backoff = Duration::from_millis(50);
                    self.config.poll_interval
                }
                Ok(Pass::Busy) => Duration::from_millis(25),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox relay failed; retrying"
                    );
                    metrics::counter!("outbox_relay_failures_total").increment(1);
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = Instant::now();
                if let Err(error) = self.prune().await {
                    tracing::warn!(%error, "outbox prune failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = woken.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
