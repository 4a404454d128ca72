//! `gateway`: the front door: routes, verifies, limits, aggregates.

use std::process::ExitCode;

use gateway::Application;
use gateway::config::Config;
use service_kit::server::shutdown_signal;

/// mimalloc's per-thread free lists suit a proxy's many small, short-lived allocations
/// (headers, futures, buffers) better than glibc's malloc (docs/bench-gateway.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.telemetry.clone();
    // With worker threads serving the requests, the main runtime only accepts
    // connections and runs Redis, the JWKS refresh and the dashboard's calls: one
    // thread is plenty. Without them it serves too, on a thread per core.
    let mut runtime = if config.workers() > 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(service_kit::server::main("gateway", &telemetry, async {
        let service = Application::build(config).await?;
        Ok(service.run_until(shutdown_signal()).await?)
    }))
}
