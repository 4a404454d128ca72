//! What the client costs: a breaker check, and a whole call through the client against
//! the same call through bare reqwest, both to a local server.
//!
//! `cargo bench -p service-client`; figures are recorded in this crate's README.

use std::hint::black_box;
use std::time::Duration;

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use service_client::breaker::Outcome;
use service_client::{ClientSettings, PeerConfig};
use service_kit::config::Secret;

fn breaker_check(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let peer = PeerConfig::new(
        "bench",
        "http://127.0.0.1:1",
        Secret::new(common::KEY),
        &ClientSettings::default(),
    );
    let breaker = service_client::CircuitBreaker::new(peer.breaker);
    c.bench_function("breaker: acquire + record (closed)", |b| {
        b.iter(|| {
            let permit = breaker.try_acquire().expect("closed");
            breaker.record(
                permit,
                black_box(Outcome::Success),
                Duration::from_micros(50),
            );
        });
    });
}

fn whole_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = common::start_server(&runtime);
    let bare = common::bare();
    let bare_url = format!("{url}/ok");
    let client = common::client(&runtime, &url);

    let mut group = c.benchmark_group("GET to a local server");
    group.bench_function("bare reqwest", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bare
                .get(&bare_url)
                .bearer_auth(common::KEY)
                .send()
                .await
                .expect("response");
            black_box(response.bytes().await.expect("body"));
        });
    });
    group.bench_function("service-client", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(client.get("/ok").send().await.expect("response"));
        });
    });
    group.finish();

    // Wall time per call is dominated by thread wake-ups that vary run to run; CPU time
    // (client and server together, same server work in both) shows what the client's
    // own work adds.
    let mut group = c.benchmark_group("CPU time per GET");
    group.bench_function("bare reqwest", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time::ProcessTime::now();
            runtime.block_on(async {
                for _ in 0..iters {
                    let response = bare
                        .get(&bare_url)
                        .bearer_auth(common::KEY)
                        .send()
                        .await
                        .expect("response");
                    black_box(response.bytes().await.expect("body"));
                }
            });
            start.elapsed()
        });
    });
    group.bench_function("service-client", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time::ProcessTime::now();
            runtime.block_on(async {
                for _ in 0..iters {
                    black_box(client.get("/ok").send().await.expect("response"));
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, breaker_check, whole_call);
criterion_main!(benches);
