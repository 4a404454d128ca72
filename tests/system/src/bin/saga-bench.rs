//! `saga-bench`: the order saga end to end, measured on the real binaries.
//!
//! Starts the whole system (as the whole-system tests do, from the binaries built beside
//! this one: build with `--release` to measure release), then:
//!
//! 1. idle memory: each service's RSS after start-up;
//! 2. fixed load: `--rate` orders a second for `--seconds`, through the gateway; each
//!    order's time from sending `POST /api/orders` to its `order.confirmed` event
//!    appearing on the order stream (read straight from Redis, so measuring adds no
//!    load to the services);
//! 3. saturation: `--clients` clients placing orders back to back for `--seconds`;
//!    confirmed orders a second;
//! 4. memory under load: each service's peak RSS.
//!
//! Prints a Markdown table. Needs TEST_DATABASE_URL / TEST_REDIS_URL like the tests
//! (`scripts/bench` sets them).
#![allow(clippy::unwrap_used)] // a measuring tool: a failed unwrap is a failed run

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::events::streams;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use reqwest::Method;
use serde_json::{Value, json};
use system_tests::{System, User};

struct Options {
    rate: u64,
    seconds: u64,
    clients: usize,
}

fn options() -> Options {
    let mut options = Options {
        rate: 100,
        seconds: 10,
        clients: 32,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--rate", Some(v)) => options.rate = v,
            ("--seconds", Some(v)) => options.seconds = v,
            ("--clients", Some(v)) => options.clients = usize::try_from(v).unwrap(),
            _ => {
                eprintln!("usage: saga-bench [--rate N] [--seconds N] [--clients N]");
                std::process::exit(2);
            }
        }
    }
    options
}

/// When each order's outcome appeared on the order stream.
type Settled = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

/// Follows the order stream from now on, noting each order's confirmation or cancellation.
async fn watch(stream: String, settled: Settled) {
    let client = redis::Client::open(test_support::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut last = "$".to_owned();
    let options = StreamReadOptions::default().block(1000).count(1000);
    loop {
        let reply: StreamReadReply = connection
            .xread_options(&[&stream], &[&last], &options)
            .await
            .unwrap();
        let now = Instant::now();
        for key in reply.keys {
            for entry in key.ids {
                last.clone_from(&entry.id);
                let Some(redis::Value::BulkString(bytes)) = entry.map.get("envelope") else {
                    continue;
                };
                let envelope: Value = serde_json::from_slice(bytes).unwrap();
                let confirmed = match envelope["type"].as_str() {
                    Some("order.confirmed") => true,
                    Some("order.cancelled") => false,
                    _ => continue,
                };
                if let Some(order) = envelope["data"]["order_id"].as_str() {
                    settled
                        .lock()
                        .unwrap()
                        .insert(order.to_owned(), (now, confirmed));
                }
            }
        }
    }
}

async fn place(system: &System, user: &User, product: &str) -> Option<String> {
    let response = system
        .request(Method::POST, "/orders", Some(&user.token))
        .json(&json!({"items": [{"product_id": product, "quantity": 1}], "payment_method": "tok_visa"}))
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let order: Value = response.json().await.ok()?;
    order["id"].as_str().map(str::to_owned)
}

/// Waits until every one of `orders` has settled, or `limit` passes.
async fn drain(settled: &Settled, orders: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let done = {
            let settled = settled.lock().unwrap();
            orders.iter().all(|id| settled.contains_key(id))
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let options = options();
    let system = System::start(&[
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("RUST_LOG", "warn,service_kit::server=info"),
    ])
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = system.memory_kib().await;

    let admin = system.admin().await;
    let product = system.product(&admin, 500, 100_000_000).await;
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(system.user(&format!("Buyer {i}")).await);
    }
    let settled: Settled = Arc::default();
    let stream = format!("{}{}", system.redis_prefix(), streams::ORDER);
    tokio::spawn(watch(stream, settled.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Fixed load: one order every 1/rate seconds, each on its own task.
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let total = options.rate * options.seconds;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let sent: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let system = Arc::new(system);
    let users = Arc::new(users);
    let mut tasks = tokio::task::JoinSet::new();
    let fixed_started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let (system, users, product, sent) =
            (system.clone(), users.clone(), product.clone(), sent.clone());
        tasks.spawn(async move {
            let user = &users[usize::try_from(n).unwrap() % users.len()];
            let at = Instant::now();
            if let Some(id) = place(&system, user, &product).await {
                sent.lock().unwrap().push((id, at));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let offered = fixed_started.elapsed();
    let sent = sent.lock().unwrap().clone();
    let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    drain(&settled, &ids, Duration::from_secs(60)).await;
    let mut latencies: Vec<Duration> = {
        let settled = settled.lock().unwrap();
        sent.iter()
            .filter_map(|(id, at)| settled.get(id).map(|(done, _)| done.duration_since(*at)))
            .collect()
    };
    latencies.sort();
    let fixed_confirmed = {
        let settled = settled.lock().unwrap();
        ids.iter()
            .filter(|id| settled.get(*id).is_some_and(|s| s.1))
            .count()
    };

    // Saturation: clients back to back for the same time.
    let window = Duration::from_secs(options.seconds);
    let saturation_started = Instant::now();
    let placed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..options.clients {
        let (system, users, product, placed) = (
            system.clone(),
            users.clone(),
            product.clone(),
            placed.clone(),
        );
        clients.spawn(async move {
            let user = &users[c % users.len()];
            while saturation_started.elapsed() < window {
                if let Some(id) = place(&system, user, &product).await {
                    placed.lock().unwrap().push(id);
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let placed = placed.lock().unwrap().clone();
    drain(&settled, &placed, Duration::from_secs(120)).await;
    let (saturated_confirmed, last_settled) = {
        let settled = settled.lock().unwrap();
        let done: Vec<&(Instant, bool)> = placed.iter().filter_map(|id| settled.get(id)).collect();
        (
            done.iter().filter(|s| s.1).count(),
            done.iter().map(|s| s.0).max().unwrap_or(saturation_started),
        )
    };
    let saturated_span = last_settled.duration_since(saturation_started);
    let loaded = system.memory_kib().await;

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!("| measure | figure |");
    println!("|---|---:|");
    println!(
        "| fixed load: offered | {} orders/s for {} s ({} orders sent in {:.1} s, {} accepted, {} confirmed) |",
        options.rate,
        options.seconds,
        total,
        offered.as_secs_f64(),
        sent.len(),
        fixed_confirmed
    );
    println!(
        "| fixed load: `POST /api/orders` → `order.confirmed`, p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| saturation ({} clients, {} s): orders accepted | {} ({:.0}/s) |",
        options.clients,
        options.seconds,
        placed.len(),
        placed.len() as f64 / window.as_secs_f64()
    );
    println!(
        "| saturation: orders confirmed a second (confirmed / time to the last one) | {:.0}/s ({} in {:.1} s) |",
        saturated_confirmed as f64 / saturated_span.as_secs_f64().max(0.001),
        saturated_confirmed,
        saturated_span.as_secs_f64()
    );
    let idle_total: u64 = idle.iter().map(|m| m.1).sum();
    let peak_total: u64 = loaded.iter().map(|m| m.2).sum();
    for ((name, idle_now, _), (_, _, peak)) in idle.iter().zip(&loaded) {
        println!(
            "| RSS {name}: idle / peak under load | {} / {} |",
            mib(*idle_now),
            mib(*peak)
        );
    }
    println!(
        "| RSS of the six together: idle / peak under load | {} / {} |",
        mib(idle_total),
        mib(peak_total)
    );
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    let rate = saturated_confirmed as f64 / saturated_span.as_secs_f64().max(0.001);
    let p99 = percentile(&latencies, 99.0);
    println!();
    println!("| target | result |");
    println!("|---|---|");
    println!(
        "| ≥ 500 confirmed orders/s at saturation | {rate:.0}/s: {} |",
        verdict(rate >= 500.0)
    );
    println!(
        "| p99 order-to-confirmed ≤ 50 ms at {} orders/s | {}: {} |",
        options.rate,
        ms(p99),
        verdict(p99 <= Duration::from_millis(50))
    );
    println!(
        "| the six services ≤ 60 MB RSS idle | {}: {} |",
        mib(idle_total),
        verdict(idle_total * 1024 <= 60 * 1000 * 1000)
    );
    // Dropping the system stops the services and removes their databases and keys.
    drop(Arc::into_inner(system));
}
