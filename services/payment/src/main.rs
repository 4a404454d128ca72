//! `payment-service`: charges orders and refunds cancelled ones.

use std::process::ExitCode;

use payment_service::Application;
use payment_service::config::Config;
use service_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.service.telemetry.clone();
    service_kit::server::main("payment", &telemetry, async {
        let service = Application::build(config).await?;
        Ok(service.run_until(shutdown_signal()).await?)
    })
    .await
}
