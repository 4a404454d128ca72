//! `gateway`: the front door: routes, verifies, limits, aggregates.

use std::process::ExitCode;

use gateway::Application;
use gateway::config::Config;
use service_kit::server::shutdown_signal;

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
