//! Events per second on this machine: pipelined publish, consume + acknowledge with a
//! no-op handler, and consume through the Postgres inbox (a transaction per event, and
//! effects batched by the consumer); beside `redis-benchmark`'s raw XADD rate from the
//! same Redis, for scale.
//!
//! `cargo bench -p event-bus` (uses TEST_DATABASE_URL / TEST_REDIS_URL like the tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_bus::{Consumer, ConsumerConfig, Effect, Envelope, HandlerError, Publisher, Wake, inbox};
use futures::future::BoxFuture;
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 50_000;
const INBOX_EVENTS: usize = 20_000;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn events(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| {
            Envelope::new("bench.happened", "bench", &serde_json::json!({ "n": i }))
                .expect("envelope")
        })
        .collect()
}

fn config(group: &str, stream: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(group, &[stream]);
    config.batch_size = 500;
    config.max_in_flight = 1000;
    config.concurrency = 64;
    config.block = Duration::from_millis(50);
    config
}

/// Runs `consumer` until `done` reaches `expected`; the time it took.
async fn consume(consumer: Consumer, expected: usize, done: Arc<AtomicUsize>) -> Duration {
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(consumer.run(cancel.clone()));
    while done.load(Ordering::SeqCst) < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    cancel.cancel();
    let _ = task.await;
    elapsed
}

fn rate(n: usize, elapsed: Duration) -> String {
    format!("{:>9.0} events/s", n as f64 / elapsed.as_secs_f64())
}

async fn run() {
    let redis_url = test_support::redis_url();
    let client = service_kit::redis::Client::open(&redis_url).expect("REDIS url");
    let redis = client.connect().await.expect("redis");
    let stream = format!("bench:events:{}", uuid::Uuid::new_v4().simple());
    let publisher = Publisher::new(redis.clone(), 1_000_000);

    let batch = events(EVENTS);
    let started = Instant::now();
    for chunk in batch.chunks(500) {
        publisher
            .publish_batch(&stream, chunk)
            .await
            .expect("publish");
    }
    let publish = started.elapsed();

    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let noop = Consumer::new(client.clone(), config("noop", &stream), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let noop = consume(noop, EVENTS, acked).await;

    let db = test_support::TestDatabase::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(db.url())
        .await
        .expect("postgres");
    event_bus::schema::install(&pool).await.expect("schema");
    sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    let inbox_stream = format!("{stream}:inbox");
    let batched_stream = format!("{stream}:batched");
    for chunk in events(INBOX_EVENTS).chunks(500) {
        for stream in [&inbox_stream, &batched_stream] {
            publisher
                .publish_batch(stream, chunk)
                .await
                .expect("publish");
        }
    }
    let applied = Arc::new(AtomicUsize::new(0));
    let counter = applied.clone();
    let each_pool = pool.clone();
    let each = Consumer::new(
        client.clone(),
        config("inbox", &inbox_stream),
        move |envelope| {
            let (pool, counter) = (each_pool.clone(), counter.clone());
            async move {
                let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
                if let Some(mut tx) = inbox::begin(&pool, "inbox", envelope.id)
                    .await
                    .map_err(retry)?
                {
                    sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                        .bind(envelope.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(retry)?;
                    tx.commit().await.map_err(retry)?;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    let through_inbox = consume(each, INBOX_EVENTS, applied).await;

    let applied = Arc::new(AtomicUsize::new(0));
    let batched = Consumer::with_effects(
        client.clone(),
        config("batched", &batched_stream),
        pool.clone(),
        Wake::new(),
        Count(applied.clone()),
    );
    let batched = consume(batched, INBOX_EVENTS, applied).await;

    test_support::delete_keys(&[stream.clone(), inbox_stream.clone(), batched_stream.clone()]);

    println!(
        "event-bus throughput, {} events ({} through the inbox):",
        EVENTS, INBOX_EVENTS
    );
    println!(
        "  publish, pipelined 500 a batch   {}",
        rate(EVENTS, publish)
    );
    println!("  consume + ack, no-op handler     {}", rate(EVENTS, noop));
    println!(
        "  consume through Postgres inbox   {}   (a transaction per event)",
        rate(INBOX_EVENTS, through_inbox)
    );
    println!(
        "  consume through Postgres inbox   {}   (effects batched by the consumer)",
        rate(INBOX_EVENTS, batched)
    );
    redis_benchmark(&redis_url);
}

/// The batched consumer's effect: a row per event; counts what it applied.
///
/// The count may run ahead of commits by a batch (an effect is counted before its
/// transaction commits), which is within the figure's precision at 20,000 events.
struct Count(Arc<AtomicUsize>);

impl Effect for Count {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(event.id)
                .execute(&mut **tx)
                .await
                .map_err(HandlerError::retry)?;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// `redis-benchmark`'s XADD rate against the same server, pipelined 16 deep.
fn redis_benchmark(url: &str) {
    let address = url.trim_start_matches("redis://");
    let (host, port) = address.split_once(':').unwrap_or((address, "6379"));
    let port = port.trim_end_matches('/');
    let key = format!("bench:raw:{}", uuid::Uuid::new_v4().simple());
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-h", host, "-p", port, "-n", "100000", "-P", "16", "-q", "XADD", &key, "*",
            "envelope", "x",
        ])
        .output();
    match output {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout);
            // redis-benchmark redraws a progress line with carriage returns; the
            // final figure is the last of them.
            let line = text
                .split(['\r', '\n'])
                .rfind(|part| part.contains("requests per second"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            println!("  redis-benchmark XADD, -P 16      {line}");
        }
        Err(error) => println!("  redis-benchmark not run: {error}"),
    }
    let _ = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "DEL", &key])
        .output();
}
