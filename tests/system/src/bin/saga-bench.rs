//! `saga-bench`: the order saga end to end, measured on the real binaries.
//!
//! One file: one benchmark program, its phases in the order they run.
//!
//! Starts the whole system (as the whole-system tests do, from the binaries built beside
//! this one: build with `--release` to measure release), then, through the gateway:
//!
//! 1. idle memory: each service's RSS after start-up, and how much of it is its own
//!    (anonymous: heap, stacks, buffers) rather than clean pages of its program file;
//!    and the six together with the pages they share (the C library's) counted once;
//! 2. one order at a time, nothing else running: `POST /api/orders` → `order.confirmed`;
//! 3. saturation: `--clients` clients placing orders back to back for `--seconds`,
//!    over `--products` products (orders spread over many rows) and again over one
//!    product (every reservation queues on one row lock); confirmed orders a second;
//! 4. fixed loads: `--rate` orders a second, and half and 80 % of the measured
//!    many-products saturation, each for `--seconds`: p50 / p99 / max, and the same
//!    percentiles for each hop of the saga;
//! 5. memory under load: each service's peak RSS;
//! 6. what the database itself counts (`pg_stat_statements`, which the server must
//!    preload: `./scripts/bench` starts one that does), per confirmed order and per
//!    service database, one at a time (phase 2) and at saturation (phase 3, many
//!    products): statements, commits, WAL; the statements run most; and what the idle
//!    system runs a second (its sweeps and polls, in every figure above).
//!
//! Every time is read off the events themselves, straight from Redis (so measuring adds
//! no load to the services): an envelope's `time` is when its producer wrote it
//! to the outbox (just before committing), its stream entry id is when Redis appended
//! it. So for each event, *publish* is outbox write → on the stream (commit, relay,
//! `XADD`), and for each consumer, *handle* is the cause on the stream → its effect's
//! event written (read, inbox, effect).
//!
//! Prints Markdown. Needs TEST_DATABASE_URL / TEST_REDIS_URL like the tests
//! (`scripts/bench` sets them).
#![allow(clippy::unwrap_used)] // a measuring tool: a failed unwrap is a failed run

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use contracts::events::{streams, types};
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use reqwest::Method;
use serde_json::{Value, json};
use system_tests::counts::{Counter, Counts};
use system_tests::{System, User};

struct Options {
    rate: u64,
    seconds: u64,
    clients: usize,
    products: usize,
}

const USAGE: &str = "usage: saga-bench [--rate N] [--seconds N] [--clients N] [--products N]";

fn options() -> Options {
    let mut options = Options {
        rate: 100,
        seconds: 10,
        clients: 32,
        products: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value: Option<u64> = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--rate", Some(v)) if v > 0 => options.rate = v,
            ("--seconds", Some(v)) if v > 0 => options.seconds = v,
            ("--clients", Some(v)) if v > 0 => options.clients = usize::try_from(v).unwrap(),
            ("--products", Some(v)) if v > 0 => options.products = usize::try_from(v).unwrap(),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    options
}

/// One event of an order, as seen on its stream.
#[derive(Clone, Copy)]
struct Seen {
    /// The envelope's `time`: written to the outbox.
    written: SystemTime,
    /// The entry id's time: appended to the stream.
    appended: SystemTime,
}

/// Each order's events by type, from every saga stream.
type Journeys = Arc<Mutex<HashMap<String, HashMap<String, Seen>>>>;

/// The saga's happy path: each event and the service whose handler writes it.
const PATH: [(&str, &str); 4] = [
    (types::ORDER_CREATED, "order (POST)"),
    (types::INVENTORY_RESERVED, "inventory"),
    (types::PAYMENT_SUCCEEDED, "payment"),
    (types::ORDER_CONFIRMED, "order"),
];

fn entry_time(id: &str) -> SystemTime {
    let ms: u64 = id.split('-').next().unwrap().parse().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Follows the order, inventory and payment streams (every partition) from now on,
/// noting every event of every order.
async fn watch(prefix: String, partitions: u16, journeys: Journeys) {
    let keys: Vec<String> = [streams::ORDER, streams::INVENTORY, streams::PAYMENT]
        .iter()
        .flat_map(|s| event_bus::Stream::new(format!("{prefix}{s}"), partitions).partitions())
        .collect();
    // One reader per partition: on a cluster they live on different nodes.
    for key in keys {
        tokio::spawn(watch_one(key, journeys.clone()));
    }
}

async fn watch_one(key: String, journeys: Journeys) {
    // A blocking read may take its whole second: no shorter response timeout.
    let mut connection = test_support::redis_client()
        .connect_with_timeout(Duration::from_secs(10))
        .await
        .unwrap();
    let keys = [key];
    let mut last: Vec<String> = vec!["$".to_owned()];
    let options = StreamReadOptions::default().block(1000).count(1000);
    loop {
        let reply: StreamReadReply = connection
            .xread_options(&keys, &last, &options)
            .await
            .unwrap();
        let mut journeys = journeys.lock().unwrap();
        for key in reply.keys {
            let slot = keys.iter().position(|k| *k == key.key).unwrap();
            for entry in key.ids {
                last[slot].clone_from(&entry.id);
                let Some(redis::Value::BulkString(bytes)) = entry.map.get("envelope") else {
                    continue;
                };
                let envelope: Value = serde_json::from_slice(bytes).unwrap();
                let (Some(kind), Some(order), Some(written)) = (
                    envelope["type"].as_str(),
                    envelope["data"]["order_id"].as_str(),
                    envelope["time"].as_str(),
                ) else {
                    continue;
                };
                let written =
                    SystemTime::from(chrono::DateTime::parse_from_rfc3339(written).unwrap());
                journeys.entry(order.to_owned()).or_default().insert(
                    kind.to_owned(),
                    Seen {
                        written,
                        appended: entry_time(&entry.id),
                    },
                );
            }
        }
    }
}

struct Load {
    system: Arc<System>,
    users: Arc<Vec<User>>,
    journeys: Journeys,
}

/// An order that was accepted, and when its POST was sent.
struct Placed {
    id: String,
    sent: SystemTime,
}

impl Load {
    async fn place(&self, user: usize, product: &str) -> Option<Placed> {
        let user = &self.users[user % self.users.len()];
        let sent = SystemTime::now();
        let response = self
            .system
            .request(Method::POST, "/orders", Some(&user.token))
            .json(&json!({"items": [{"product_id": product, "quantity": 1}], "payment_method": "tok_visa"}))
            .send()
            .await
            .ok()?;
        if response.status() != 202 {
            return None;
        }
        let order: Value = response.json().await.ok()?;
        Some(Placed {
            id: order["id"].as_str()?.to_owned(),
            sent,
        })
    }

    /// When `order` settled (confirmed or cancelled), and whether it was confirmed.
    fn settled(&self, order: &str) -> Option<(SystemTime, bool)> {
        let journeys = self.journeys.lock().unwrap();
        let events = journeys.get(order)?;
        if let Some(seen) = events.get(types::ORDER_CONFIRMED) {
            return Some((seen.appended, true));
        }
        events
            .get(types::ORDER_CANCELLED)
            .map(|seen| (seen.appended, false))
    }

    /// Waits until every one of `orders` has settled, or `limit` passes.
    async fn drain(&self, orders: &[Placed], limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if orders.iter().all(|o| self.settled(&o.id).is_some()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Places `rate` orders a second for `seconds` (each on its own task), over
    /// `products` in turn; returns the accepted ones once they settled.
    async fn fixed(self: &Arc<Self>, rate: f64, seconds: u64, products: &[String]) -> Vec<Placed> {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let total = (rate * seconds as f64).round() as usize;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..total {
            ticker.tick().await;
            let (load, product) = (self.clone(), products[n % products.len()].clone());
            tasks.spawn(async move { load.place(n, &product).await });
        }
        let placed: Vec<Placed> = tasks.join_all().await.into_iter().flatten().collect();
        self.drain(&placed, Duration::from_secs(60)).await;
        placed
    }

    /// `clients` clients placing orders back to back for `seconds`; returns confirmed
    /// orders a second (confirmed / time from the start to the last confirmation) and
    /// how many were confirmed.
    async fn saturate(
        self: &Arc<Self>,
        clients: usize,
        seconds: u64,
        products: &[String],
    ) -> (f64, usize) {
        let window = Duration::from_secs(seconds);
        let started = Instant::now();
        let started_at = SystemTime::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (load, products) = (self.clone(), products.to_vec());
            tasks.spawn(async move {
                let mut placed = Vec::new();
                let mut n = c;
                while started.elapsed() < window {
                    if let Some(order) = load.place(c, &products[n % products.len()]).await {
                        placed.push(order);
                    }
                    n += clients;
                }
                placed
            });
        }
        let placed: Vec<Placed> = tasks.join_all().await.into_iter().flatten().collect();
        self.drain(&placed, Duration::from_secs(120)).await;
        let settled: Vec<(SystemTime, bool)> =
            placed.iter().filter_map(|o| self.settled(&o.id)).collect();
        let confirmed = settled.iter().filter(|s| s.1).count();
        let last = settled.iter().map(|s| s.0).max().unwrap_or(started_at);
        let span = last.duration_since(started_at).unwrap_or_default();
        (confirmed as f64 / span.as_secs_f64().max(0.001), confirmed)
    }

    /// POST → `order.confirmed` of each confirmed order, sorted.
    fn latencies(&self, placed: &[Placed]) -> Vec<Duration> {
        let mut latencies: Vec<Duration> = placed
            .iter()
            .filter_map(|o| match self.settled(&o.id) {
                Some((at, true)) => Some(at.duration_since(o.sent).unwrap_or_default()),
                _ => None,
            })
            .collect();
        latencies.sort();
        latencies
    }

    /// Each hop's durations over the confirmed orders of `placed`, sorted: for each
    /// event of the happy path, its producer's part (cause on the stream, or the POST
    /// sent, → written) and its publishing (written → on the stream).
    fn hops(&self, placed: &[Placed]) -> Vec<(String, Vec<Duration>)> {
        let mut hops: Vec<(String, Vec<Duration>)> = Vec::new();
        for (kind, producer) in PATH {
            hops.push((format!("{producer}: handle → `{kind}` written"), Vec::new()));
            hops.push((format!("`{kind}`: written → on the stream"), Vec::new()));
        }
        let journeys = self.journeys.lock().unwrap();
        for order in placed {
            let Some(events) = journeys.get(&order.id) else {
                continue;
            };
            let Some(seen) = PATH
                .iter()
                .map(|(kind, _)| events.get(*kind).copied())
                .collect::<Option<Vec<Seen>>>()
            else {
                continue;
            };
            let mut cause = order.sent;
            for (i, event) in seen.iter().enumerate() {
                let since = |a: SystemTime, b: SystemTime| a.duration_since(b).unwrap_or_default();
                hops[2 * i].1.push(since(event.written, cause));
                hops[2 * i + 1].1.push(since(event.appended, event.written));
                cause = event.appended;
            }
        }
        for (_, durations) in &mut hops {
            durations.sort();
        }
        hops
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn spread(sorted: &[Duration]) -> String {
    format!(
        "{} / {} / {}",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or_default())
    )
}

/// How long the idle system's own statements are counted.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// Statements listed by how often they ran.
const TOP: i64 = 12;

/// The database's counts per confirmed order, one at a time and at saturation
/// (`windows`: confirmed orders and counts of each), per service, and the statements
/// run most at saturation.
fn print_counts(windows: &[(usize, &Counts); 2], idle: &Counts) {
    let per = |n: u64, orders: usize| format!("{:.1}", n as f64 / orders.max(1) as f64);
    let [(alone, alone_counts), (saturated, saturated_counts)] = *windows;
    println!();
    println!(
        "What the database counts per confirmed order (`pg_stat_statements`; one at a time: the {alone} orders above; at saturation: the {saturated} of the many-products run), one at a time / at saturation:"
    );
    println!();
    println!("| database | statements | commits | WAL records | WAL bytes | idle: statements/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let rows = alone_counts
        .services
        .iter()
        .zip(&saturated_counts.services)
        .zip(&idle.services)
        .map(|((a, s), i)| (a.clone(), s.clone(), i.clone()))
        .chain([(alone_counts.total(), saturated_counts.total(), idle.total())]);
    for (a, s, i) in rows {
        let name = if a.service == "all" {
            "**all**".to_owned()
        } else {
            a.service.to_owned()
        };
        println!(
            "| {name} | {} / {} | {} / {} | {} / {} | {} / {} | {:.1} |",
            per(a.statements, alone),
            per(s.statements, saturated),
            per(a.commits, alone),
            per(s.commits, saturated),
            per(a.wal_records, alone),
            per(s.wal_records, saturated),
            per(a.wal_bytes, alone),
            per(s.wal_bytes, saturated),
            i.statements as f64 / IDLE_WINDOW.as_secs_f64(),
        );
    }
    println!();
    println!(
        "The whole server's WAL per confirmed order (its position moved): {} bytes one at a time, {} at saturation.",
        per(alone_counts.server_wal_bytes, alone),
        per(saturated_counts.server_wal_bytes, saturated)
    );
    println!();
    println!("The statements run most at saturation, per confirmed order:");
    println!();
    println!("| database | per order | statement |");
    println!("|---|---:|---|");
    for statement in &saturated_counts.top {
        let mut query: String = statement.query.chars().take(140).collect();
        if query.len() < statement.query.len() {
            query.push('…');
        }
        println!(
            "| {} | {} | `{}` |",
            statement.service,
            per(statement.calls, saturated),
            query.replace('|', "\\|").replace('`', "'")
        );
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let partitions = std::env::var("EVENT_PARTITIONS").unwrap_or_else(|_| "1".to_owned());
    let system = System::start(&[
        ("EVENT_PARTITIONS", partitions.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RUST_LOG", "warn,service_kit::server=info"),
        // The default, not the tests' 100 ms: the queues are woken by the commits that
        // fill them, and the poll only finds retries due.
        ("DELIVERY_POLL_MS", "500"),
    ])
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = system.memory().await;

    let admin = system.admin().await;
    let mut products = Vec::new();
    for _ in 0..options.products {
        products.push(system.product(&admin, 500, 100_000_000).await);
    }
    let hot = vec![system.product(&admin, 500, 100_000_000).await];
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(system.user(&format!("Buyer {i}")).await);
    }
    let journeys: Journeys = Arc::default();
    let partitions = partitions.parse().expect("EVENT_PARTITIONS is a number");
    watch(
        system.redis_prefix().to_owned(),
        partitions,
        journeys.clone(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counter = Counter::connect(&test_support::database_server_url(), &system)
        .await
        .unwrap_or_else(|reason| {
            eprintln!("saga-bench: {reason}");
            std::process::exit(2);
        });
    counter.reset().await;
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_counts = counter.read(0).await;
    let load = Arc::new(Load {
        system: Arc::new(system),
        users: Arc::new(users),
        journeys,
    });

    // One at a time, nothing else running.
    counter.reset().await;
    let mut alone = Vec::new();
    for n in 0..10 {
        let order = load.place(n, &products[n % products.len()]).await.unwrap();
        load.drain(std::slice::from_ref(&order), Duration::from_secs(10))
            .await;
        alone.push(order);
    }
    let alone_latencies = load.latencies(&alone);
    let alone_counts = counter.read(TOP).await;

    counter.reset().await;
    let (saturation, saturated) = load
        .saturate(options.clients, options.seconds, &products)
        .await;
    let saturated_counts = counter.read(TOP).await;
    let (hot_saturation, hot_saturated) =
        load.saturate(options.clients, options.seconds, &hot).await;

    let mut fixed = Vec::new();
    let mut rates = vec![(format!("{} orders/s", options.rate), options.rate as f64)];
    for share in [0.5, 0.8] {
        let rate = (saturation * share).max(1.0);
        rates.push((
            format!("{:.0} % of saturation ({rate:.0}/s)", share * 100.0),
            rate,
        ));
    }
    for (name, rate) in &rates {
        let placed = load.fixed(*rate, options.seconds, &products).await;
        fixed.push((name.clone(), placed));
    }
    let loaded = load.system.memory().await;

    println!("| measure | figure |");
    println!("|---|---:|");
    println!(
        "| one order at a time, nothing else running: `POST` → `order.confirmed`, p50 / max of {} | {} / {} ms |",
        alone_latencies.len(),
        ms(percentile(&alone_latencies, 50.0)),
        ms(alone_latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| saturation, {} clients, {} products, {} s: confirmed orders/s | {saturation:.0}/s ({saturated} orders) |",
        options.clients, options.products, options.seconds
    );
    println!(
        "| saturation, {} clients, one product, {} s: confirmed orders/s | {hot_saturation:.0}/s ({hot_saturated} orders) |",
        options.clients, options.seconds
    );
    for (name, placed) in &fixed {
        let latencies = load.latencies(placed);
        println!(
            "| offered {name} for {} s: confirmed / accepted; `POST` → `order.confirmed` p50 / p99 / max | {} / {}; {} ms |",
            options.seconds,
            latencies.len(),
            placed.len(),
            spread(&latencies)
        );
    }
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let idle_total: u64 = idle.iter().map(|(_, m)| m.resident).sum();
    let own_total: u64 = idle.iter().map(|(_, m)| m.own).sum();
    let proportional_total: u64 = idle.iter().map(|(_, m)| m.proportional).sum();
    let peak_total: u64 = loaded.iter().map(|(_, m)| m.peak).sum();
    for ((name, at_rest), (_, under_load)) in idle.iter().zip(&loaded) {
        println!(
            "| RSS {name}: idle (its own / pages of files) / peak under load | {} ({} / {}) / {} |",
            mib(at_rest.resident),
            mib(at_rest.own),
            mib(at_rest.resident - at_rest.own.min(at_rest.resident)),
            mib(under_load.peak)
        );
    }
    println!(
        "| RSS of the six together: idle (their own / pages of files) / peak under load | {} ({} / {}) / {} |",
        mib(idle_total),
        mib(own_total),
        mib(idle_total - own_total.min(idle_total)),
        mib(peak_total)
    );
    println!(
        "| the six together idle, pages they share with other processes split among them (sum of `Pss`) | {} |",
        mib(proportional_total)
    );

    print_counts(
        &[
            (alone_latencies.len(), &alone_counts),
            (saturated, &saturated_counts),
        ],
        &idle_counts,
    );

    println!();
    println!("Each hop, p50 / p99 / max in ms, at each offered load:");
    println!();
    print!("| hop | one order at a time |");
    for (name, _) in &fixed {
        print!(" {name} |");
    }
    println!();
    print!("|---|---:|");
    for _ in &fixed {
        print!("---:|");
    }
    println!();
    let mut all_hops: Vec<Vec<(String, Vec<Duration>)>> = vec![load.hops(&alone)];
    all_hops.extend(fixed.iter().map(|(_, placed)| load.hops(placed)));
    for (i, (name, _)) in all_hops[0].iter().enumerate() {
        print!("| {name} |");
        for hops in &all_hops {
            print!(" {} |", spread(&hops[i].1));
        }
        println!();
    }
    // A line for scripts/bench to read the figures from.
    println!();
    let per = |n: u64, orders: usize| n as f64 / orders.max(1) as f64;
    println!(
        "<!-- saga: saturation={saturation:.1} hot={hot_saturation:.1} alone_p50_ms={} idle_mib={:.1} statements_alone={:.1} statements_saturated={:.1} commits_saturated={:.2} -->",
        ms(percentile(&alone_latencies, 50.0)),
        idle_total as f64 / 1024.0,
        per(alone_counts.total().statements, alone_latencies.len()),
        per(saturated_counts.total().statements, saturated),
        per(saturated_counts.total().commits, saturated),
    );
    // Dropping the system stops the services and removes their databases and keys.
    drop(Arc::into_inner(load).map(|load| Arc::into_inner(load.system)));
}
