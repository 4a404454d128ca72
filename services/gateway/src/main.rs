//! `gateway`: the front door: routes, verifies, limits, aggregates.

use std::process::ExitCode;

use gateway::Application;
use gateway::config::Config;
use service_kit::server::shutdown_signal;

/// mimalloc's per-thread free lists suit a proxy's many small, short-lived allocations
/// (headers, futures, buffers) better than glibc's malloc, which showed as ~15 % of a
/// profile of the proxy path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.telemetry.clone();
    service_kit::server::main("gateway", &telemetry, async {
        let service = Application::build(config).await?;
        service.run_until(shutdown_signal()).await
    })
    .await
}
