//! `order-service`: takes orders and follows them to confirmed or cancelled.

use std::process::ExitCode;

use order_service::Application;
use order_service::config::Config;
use service_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.service.telemetry.clone();
    service_kit::server::main("order", &telemetry, async {
        let service = Application::build(config).await?;
        Ok(service.run_until(shutdown_signal()).await?)
    })
    .await
}
