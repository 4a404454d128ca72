//! `inventory-service`: serves products and holds stock for orders.

use std::process::ExitCode;

use inventory_service::Application;
use inventory_service::config::Config;
use service_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.service.telemetry.clone();
    service_kit::server::main("inventory", &telemetry, async {
        let service = Application::build(config).await?;
        Ok(service.run_until(shutdown_signal()).await?)
    })
    .await
}
