//! A database with the bus schema, a Redis connection, stream names of the test's own,
//! and a handler whose effect can be counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_bus::{Envelope, HandlerError, inbox};
use service_kit::redis::Connection;
use sqlx::PgPool;
use test_support::TestDatabase;

pub struct Bus {
    /// Held until the test ends: dropping it drops the database.
    _db: TestDatabase,
    pub pool: PgPool,
    pub redis: Connection,
    /// A stream name no other test uses.
    pub stream: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        // Leave no keys behind: the stream and its dead letters.
        test_support::delete_keys(&[
            self.stream.clone(),
            event_bus::dead_letter_stream(&self.stream),
        ]);
    }
}

impl Bus {
    /// The test's stream, in one partition, for the outbox.
    pub fn single(&self) -> event_bus::Stream {
        event_bus::Stream::single(self.stream.clone())
    }

    /// A client for the test Redis, for consumers (which open their own connections).
    pub fn client(&self) -> service_kit::redis::Client {
        test_support::redis_client()
    }
}

pub async fn bus() -> Bus {
    let db = TestDatabase::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(db.url())
        .await
        .unwrap();
    event_bus::schema::install(&pool).await.unwrap();
    // No key: applying an event twice shows up as two rows.
    sqlx::query("CREATE TABLE effects (grp text NOT NULL, event_id uuid NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let redis = connect(&test_support::redis_url()).await;
    let stream = format!("test:events:{}", uuid::Uuid::new_v4().simple());
    Bus {
        _db: db,
        pool,
        redis,
        stream,
    }
}

pub async fn connect(url: &str) -> Connection {
    service_kit::redis::Client::open(url)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub fn envelope(n: usize) -> Envelope {
    Envelope::new("test.happened", "tests", &serde_json::json!({ "n": n })).unwrap()
}

/// A handler that records its effect through the inbox, exactly once per event.
pub fn effect(
    pool: PgPool,
    group: &'static str,
    applied: Arc<AtomicUsize>,
) -> impl Fn(Envelope) -> futures::future::BoxFuture<'static, Result<(), HandlerError>>
+ Send
+ Sync
+ 'static {
    move |envelope: Envelope| {
        let (pool, applied) = (pool.clone(), applied.clone());
        Box::pin(async move {
            let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
            let Some(mut tx) = inbox::begin(&pool, group, envelope.id)
                .await
                .map_err(retry)?
            else {
                return Ok(());
            };
            sqlx::query("INSERT INTO effects (grp, event_id) VALUES ($1, $2)")
                .bind(group)
                .bind(envelope.id)
                .execute(&mut **tx)
                .await
                .map_err(retry)?;
            tx.commit().await.map_err(retry)?;
            applied.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Rows in `effects` for `group`, and how many distinct events they are.
pub async fn effects(pool: &PgPool, group: &str) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM effects WHERE grp = $1")
        .bind(group)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[allow(unused_imports)] // not every test binary waits
pub use test_support::eventually;

/// A consumer config for tests: short waits.
pub fn config(group: &str, stream: &str) -> event_bus::ConsumerConfig {
    let mut config = event_bus::ConsumerConfig::new(group, &[stream]);
    config.block = Duration::from_millis(100);
    config.min_idle = Duration::from_millis(500);
    config.reclaim_interval = Duration::from_millis(100);
    config.handler_timeout = Duration::from_millis(400);
    config.max_deliveries = 3;
    config
}
