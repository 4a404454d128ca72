//! Publishes committed outbox rows to Redis and marks them.
//!
//! Events reach the relay two ways:
//!
//! - **from memory**: a commit made through [`Wake`] hands its events over as it
//!   returns, and the relay `XADD`s them at once, reading nothing back. What it
//!   published is marked in the outbox later, for many commits in one statement (at
//!   each sweep, or sooner when many are waiting), so an event costs the database
//!   nothing between its commit and its stream;
//! - **by the sweep**, every `poll_interval`: rows unpublished for longer than that
//!   (another replica's, a crash between commit and publishing, a hand-over dropped
//!   while the relay was behind or Redis was down). One statement looks; only when it
//!   finds rows does the sweep take the advisory lock (one replica sweeps at a time,
//!   oldest first), publish them and mark them.
//!
//! Publishing is at least once: a mark lost (it commits without waiting for the disk:
//! losing it costs a republish, never an event) or never written (the process died
//! after `XADD`) means the sweep publishes the row again, and consumers' inboxes drop
//! the duplicate. The relay prunes rows published longer ago than the retention.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::RelayError;
use crate::outbox::{Staged, Wake};
use crate::publisher::Publisher;

const LOCK: i64 = 0x5357_5245_4c59; // "SWRELY"

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows published per round trip, and marks written per statement at most.
    pub batch_size: i64,
    /// How often to sweep for rows no hand-over published (those older than this).
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
    /// The relay's own connection, whose commits do not wait for the disk: it only
    /// marks rows published.
    pool: PgPool,
    publisher: Publisher,
    config: RelayConfig,
    wake: Wake,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Published this many rows.
    Published(usize),
    /// Another relay holds the lock.
    Busy,
}

impl Relay {
    /// A relay for the outbox in `pool`'s database, publishing what `wake`'s commits
    /// hand over. It opens one connection of its own (with `pool`'s settings).
    pub fn new(pool: PgPool, publisher: Publisher, config: RelayConfig, wake: Wake) -> Self {
        let options = (*pool.connect_options())
            .clone()
            .options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(options);
        Self {
            pool,
            publisher,
            config,
            wake,
        }
    }

    /// Publishes one batch of unpublished rows, oldest first, however new.
    pub async fn publish_pending(&self) -> Result<Pass, RelayError> {
        self.sweep(Duration::ZERO).await
    }

    /// Publishes one batch of the rows unpublished for longer than `older_than`.
    async fn sweep(&self, older_than: Duration) -> Result<Pass, RelayError> {
        let age = older_than.as_secs_f64();
        let found = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL
                              AND created_at <= now() - make_interval(secs => $1)) AS "found!""#,
            age,
        )
        .fetch_one(&self.pool)
        .await?;
        if !found {
            return Ok(Pass::Published(0));
        }
        let mut tx = self.pool.begin().await?;
        let locked =
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#, LOCK)
                .fetch_one(&mut *tx)
                .await?;
        if !locked {
            return Ok(Pass::Busy);
        }
        let rows = sqlx::query!(
            r#"SELECT id, stream, envelope::text AS "envelope!" FROM outbox
             WHERE published_at IS NULL AND created_at <= now() - make_interval(secs => $2)
             ORDER BY seq LIMIT $1"#,
            self.config.batch_size,
            age,
        )
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let entries: Vec<(String, String)> = rows
            .into_iter()
            .map(|row| (row.stream, row.envelope))
            .collect();
        self.publisher.xadd(&entries).await?;
        mark(&mut *tx, &ids).await?;
        tx.commit().await?;
        Ok(Pass::Published(ids.len()))
    }

    /// Deletes rows published longer ago than the retention.
    pub async fn prune(&self) -> sqlx::Result<u64> {
        let secs = self.config.retention.as_secs_f64();
        let result = sqlx::query!(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            secs,
        )
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Runs until `cancel`, then returns after the batch in hand (marked).
    pub async fn run(self, cancel: CancellationToken) {
        let mut handed = self.wake.take();
        let mut published: Vec<Uuid> = Vec::new();
        let mut backoff = Duration::from_millis(50);
        let mut next_sweep = Instant::now();
        let mut last_prune = Instant::now();
        let most = usize::try_from(self.config.batch_size).unwrap_or(1).max(1);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some(batch) = next_batch(&mut handed, most) => {
                    self.publish_handed(batch, &mut published).await;
                    if published.len() >= most {
                        self.flush(&mut published).await;
                    }
                }
                () = tokio::time::sleep_until(next_sweep) => {
                    self.flush(&mut published).await;
                    let wait = match self.sweep(self.config.poll_interval).await {
                        Ok(Pass::Published(n)) if n >= most => Duration::ZERO,
                        Ok(Pass::Published(_)) => self.config.poll_interval,
                        Ok(Pass::Busy) => Duration::from_millis(25),
                        Err(error) => {
                            tracing::warn!(
                                error = service_kit::telemetry::causes(&error),
                                retry_in_ms = backoff.as_millis() as u64,
                                "outbox relay failed; retrying"
                            );
                            metrics::counter!("outbox_relay_failures_total").increment(1);
                            let wait = backoff;
                            backoff = (backoff * 2).min(self.config.max_backoff);
                            next_sweep = Instant::now() + wait;
                            continue;
                        }
                    };
                    backoff = Duration::from_millis(50);
                    next_sweep = Instant::now() + wait;
                    if last_prune.elapsed() > Duration::from_secs(60) {
                        last_prune = Instant::now();
                        if let Err(error) = self.prune().await {
                            tracing::warn!(%error, "outbox prune failed");
                        }
                    }
                }
            }
        }
        self.flush(&mut published).await;
        if let Some(handed) = handed {
            self.wake.put_back(handed);
        }
    }

    /// `XADD`s events a commit handed over; notes them for marking. On failure they
    /// stay unpublished in the outbox, for the sweep.
    async fn publish_handed(&self, batch: Vec<Staged>, published: &mut Vec<Uuid>) {
        let ids: Vec<Uuid> = batch.iter().map(|s| s.id).collect();
        let entries: Vec<(String, String)> =
            batch.into_iter().map(|s| (s.stream, s.envelope)).collect();
        match self.publisher.xadd(&entries).await {
            Ok(_) => published.extend(ids),
            Err(error) => {
                tracing::warn!(
                    %error,
                    events = ids.len(),
                    "publishing committed events failed; the sweep will retry them"
                );
                metrics::counter!("outbox_relay_failures_total").increment(1);
            }
        }
    }

    /// Marks `published` in one statement. A failed mark is forgotten: those rows are
    /// published again by a sweep, and inboxes drop the copies.
    async fn flush(&self, published: &mut Vec<Uuid>) {
        if published.is_empty() {
            return;
        }
        let marked = mark(&self.pool, published).await;
        if let Err(error) = marked {
            tracing::warn!(%error, rows = published.len(), "marking published rows failed; they will be published again");
        }
        published.clear();
    }
}

/// The next batch handed over, with whatever else is waiting (up to `most` events);
/// never ready once the hand-over is taken by another relay.
async fn next_batch(
    handed: &mut Option<mpsc::Receiver<Vec<Staged>>>,
    most: usize,
) -> Option<Vec<Staged>> {
    let Some(receiver) = handed else {
        return std::future::pending().await;
    };
    let mut batch = receiver.recv().await?;
    while batch.len() < most {
        match receiver.try_recv() {
            Ok(more) => batch.extend(more),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Marks the rows `ids` published.
async fn mark<'e>(executor: impl sqlx::PgExecutor<'e>, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
        ids,
    )
    .execute(executor)
    .await
    .map(drop)
}
