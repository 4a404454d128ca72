//! `user-service`: serves the user API, or runs one of its maintenance commands.

use std::process::ExitCode;

use service_kit::server::shutdown_signal;
use user_service::config::{Cli, Command};
use user_service::{Application, signing_keys};

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = service_kit::config::parse();
    let telemetry = cli.config.service.telemetry.clone();
    service_kit::server::main("user", &telemetry, async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(cli.config).await,
            Command::RotateSigningKey => rotate(cli.config).await,
        }
    })
    .await
}

async fn serve(config: user_service::config::Config) -> anyhow::Result<()> {
    let service = Application::build(config).await?;
    Ok(service.run_until(shutdown_signal()).await?)
}

async fn rotate(config: user_service::config::Config) -> anyhow::Result<()> {
    let pool = service_kit::database::connect_and_migrate(
        &config.service.database,
        1,
        &user_service::MIGRATOR,
    )
    .await?;
    let kid = signing_keys::rotate(&pool).await?;
    tracing::info!(kid, "signing key rotated");
    println!("new signing key: {kid}");
    Ok(())
}
