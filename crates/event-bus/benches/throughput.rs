//! Events per second on this machine: pipelined publish, consume + acknowledge with a
//! no-op handler, and consume through the Postgres inbox (a transaction per event, and
//! effects batched by the consumer); beside `redis-benchmark`'s raw XADD rate from the
//! same Redis, for scale.
//!
//! Each figure is measured on a single Redis, on a Redis Cluster of 3 masters, and on
//! one of 3 masters with a replica each, in one run and in turn (single, cluster,
//! cluster with replicas, single, ...), for one stream and for a stream in 3
//! partitions: the ratios are what the cluster path costs, and what replication adds.
//! On one small machine a cluster cannot be faster (its servers, and its replicas'
//! copying, share the cores with everything else); on several machines, partitions
//! spread over the masters.
//!
//! `cargo bench -p event-bus` (uses TEST_DATABASE_URL / TEST_REDIS_URL like the tests,
//! and TEST_REDIS_CLUSTER_URL for the cluster with replicas if set; starts the others
//! from the installed redis-server).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_bus::{
    Consumer, ConsumerConfig, Effect, Envelope, HandlerError, Publisher, Stream, Tx, Wake, inbox,
};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 50_000;
const INBOX_EVENTS: usize = 20_000;
const ROUNDS: usize = 3;

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

fn config(group: &str, stream: &Stream) -> ConsumerConfig {
    let partitions = stream.partitions();
    let partitions: Vec<&str> = partitions.iter().map(String::as_str).collect();
    let mut config = ConsumerConfig::new(group, &partitions);
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

/// Each measure's figure, in [`MEASURES`] order.
type Figures = [f64; 6];

/// Events a second, then the bench process's own CPU time per event (the client's
/// cost, which the machine's other load does not move as it moves throughput).
const MEASURES: [&str; 6] = [
    "publish, pipelined 500 a batch",
    "consume + ack, no-op handler",
    "consume through the inbox, a transaction per event",
    "consume through the inbox, effects batched",
    "client CPU per event published (ns)",
    "client CPU per event consumed, no-op (ns)",
];

/// CPU time this process has used, user and system.
fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    time(usage.user_time()) + time(usage.system_time())
}

async fn run() {
    let single = test_support::redis_url();
    let masters = test_support::TestRedisCluster::start(3, 0).await;
    let (replicated, _started) = match std::env::var("TEST_REDIS_CLUSTER_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let started = test_support::TestRedisCluster::start(3, 1).await;
            (started.url(), Some(started))
        }
    };
    let targets = [single.clone(), masters.url(), replicated];
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

    // figures[partitioned][target] holds each round's figures.
    let mut figures: [[Vec<Figures>; 3]; 2] = Default::default();
    for _ in 0..ROUNDS {
        for (partitioned, partitions) in [1u16, 3].into_iter().enumerate() {
            for (target, url) in targets.iter().enumerate() {
                let measured = measure(url, partitions, &pool).await;
                figures[partitioned][target].push(measured);
            }
        }
    }

    println!(
        "event-bus throughput, events/s, {EVENTS} events ({INBOX_EVENTS} through the inbox), \
         median of {ROUNDS} rounds taken in turn; ratios to the single Redis"
    );
    for (partitioned, title) in ["one stream", "a stream in 3 partitions"]
        .into_iter()
        .enumerate()
    {
        println!("  {title}:");
        println!(
            "    {:<52} {:>8} {:>17} {:>17}",
            "", "single", "cluster, 3 masters", "+ 3 replicas"
        );
        for (index, measure) in MEASURES.iter().enumerate() {
            let median = |rounds: &Vec<Figures>| {
                let mut values: Vec<f64> = rounds.iter().map(|f| f[index]).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let [single, masters, replicated] =
                [0, 1, 2].map(|target| median(&figures[partitioned][target]));
            println!(
                "    {measure:<52} {single:>8.0} {masters:>8.0} ({:>4.2}x) {replicated:>8.0} ({:>4.2}x)",
                masters / single,
                replicated / single
            );
        }
    }
    redis_benchmark(&single);
}

/// One round of every measure on the Redis at `url`, the stream in `partitions`.
async fn measure(url: &str, partitions: u16, pool: &sqlx::PgPool) -> Figures {
    let client = service_kit::redis::Client::open(url).expect("REDIS url");
    let redis = client.connect().await.expect("redis");
    let publisher = Publisher::new(redis.clone(), 1_000_000);
    let name = format!("bench:events:{}", uuid::Uuid::new_v4().simple());
    let stream = Stream::new(name.clone(), partitions);
    let keyed = |events: Vec<Envelope>| -> Vec<Envelope> {
        events
            .into_iter()
            .enumerate()
            .map(|(n, event)| event.keyed(format!("order-{}", n % 1000)))
            .collect()
    };

    let batch = keyed(events(EVENTS));
    let (started, cpu) = (Instant::now(), cpu_time());
    for chunk in batch.chunks(500) {
        publisher.publish_to(&stream, chunk).await.expect("publish");
    }
    let (publish, publish_cpu) = (started.elapsed(), cpu_time() - cpu);

    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let noop = Consumer::new(client.clone(), config("noop", &stream), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let cpu = cpu_time();
    let noop = consume(noop, EVENTS, acked).await;
    let noop_cpu = cpu_time() - cpu;

    let inbox_stream = Stream::new(format!("{name}:inbox"), partitions);
    let batched_stream = Stream::new(format!("{name}:batched"), partitions);
    for chunk in keyed(events(INBOX_EVENTS)).chunks(500) {
        for stream in [&inbox_stream, &batched_stream] {
            publisher.publish_to(stream, chunk).await.expect("publish");
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
                        .execute(&mut **tx)
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

    let mut keys = Vec::new();
    for stream in [&stream, &inbox_stream, &batched_stream] {
        keys.extend(stream.partitions());
    }
    let mut connection = redis.clone();
    for key in keys {
        let _: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut connection)
            .await;
    }
    let rate = |n: usize, elapsed: Duration| n as f64 / elapsed.as_secs_f64();
    [
        rate(EVENTS, publish),
        rate(EVENTS, noop),
        rate(INBOX_EVENTS, through_inbox),
        rate(INBOX_EVENTS, batched),
        publish_cpu.as_nanos() as f64 / EVENTS as f64,
        noop_cpu.as_nanos() as f64 / EVENTS as f64,
    ]
}

/// The batched consumer's effect: a row per event, the batch's in one statement;
/// counts what it applied.
///
/// The count may run ahead of commits by a batch (an effect is counted before its
/// transaction commits), which is within the figure's precision at 20,000 events.
struct Count(Arc<AtomicUsize>);

impl Effect for Count {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
            sqlx::query("INSERT INTO effects (event_id) SELECT unnest($1::uuid[])")
                .bind(&ids)
                .execute(&mut ***tx)
                .await
                .map_err(HandlerError::retry)?;
            self.0.fetch_add(events.len(), Ordering::SeqCst);
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
            println!("  single Redis: redis-benchmark XADD, -P 16: {line}");
        }
        Err(error) => println!("  redis-benchmark not run: {error}"),
    }
    let _ = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "DEL", &key])
        .output();
}
