//! The client's own cost per call, measured without thread hand-offs: client and server
//! share one current-thread runtime, so CPU time per call is work, not wake-ups.
//!
//! `cargo bench -p service-client --bench overhead` prints CPU nanoseconds per call for
//! bare reqwest and for the client, and the difference. `overhead bare N` or
//! `overhead client N` runs one side only, e.g. under `valgrind --tool=callgrind` for
//! instruction counts that do not depend on the machine's load.

use std::hint::black_box;
use std::time::Duration;

mod common;

use common::KEY;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = common::start_server(&runtime);
    let bare = common::bare();
    let client = common::client(&runtime, &url);
    let bare_url = format!("{url}/ok");

    let run_bare = |n: u64| {
        runtime.block_on(async {
            for _ in 0..n {
                let response = bare
                    .get(&bare_url)
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .expect("response");
                black_box(response.bytes().await.expect("body"));
            }
        })
    };
    let run_client = |n: u64| {
        runtime.block_on(async {
            for _ in 0..n {
                black_box(client.get("/ok").send().await.expect("response"));
            }
        })
    };

    match (
        args.first().map(String::as_str),
        args.get(1).and_then(|n| n.parse().ok()),
    ) {
        (Some("bare"), Some(n)) => run_bare(n),
        (Some("client"), Some(n)) => run_client(n),
        _ => {
            let calls = 20_000u64;
            run_bare(1_000);
            run_client(1_000);
            let mut bare_ns = Vec::new();
            let mut client_ns = Vec::new();
            // Alternate the two so drift in the machine's load hits both alike.
            for _ in 0..5 {
                let start = cpu_time::ProcessTime::now();
                run_bare(calls);
                bare_ns.push(per_call(start.elapsed(), calls));
                let start = cpu_time::ProcessTime::now();
                run_client(calls);
                client_ns.push(per_call(start.elapsed(), calls));
            }
            let (bare, client) = (median(bare_ns), median(client_ns));
            println!("CPU per GET, one thread, median of 5 x {calls} calls:");
            println!("  bare reqwest    {bare:>8.0} ns");
            println!("  service-client  {client:>8.0} ns");
            println!("  overhead        {:>8.0} ns", client - bare);
        }
    }
}

fn per_call(elapsed: Duration, calls: u64) -> f64 {
    elapsed.as_nanos() as f64 / calls as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
