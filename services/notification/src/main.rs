//! `notification-service`: tells users about their orders and subscribers about events.

use std::process::ExitCode;

use notification_service::Application;
use notification_service::config::Config;
use service_kit::server::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = service_kit::config::parse();
    let telemetry = config.service.telemetry.clone();
    service_kit::server::main("notification", &telemetry, async {
        let service = Application::build(config).await?;
        Ok(service.run_until(shutdown_signal()).await?)
    })
    .await
}
