//! `inventory-service`: serves products and holds stock for orders.

use std::process::ExitCode;

use inventory_service::Application;
use inventory_service::config::Config;
use service_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    if let Err(error) = service_kit::telemetry::init("inventory", &config.service.telemetry) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let result = async {
        let service = Application::build(config).await?;
        service.run_until(shutdown_signal()).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "inventory-service failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
