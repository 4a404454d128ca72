//! The service's PostgreSQL pool: connected with patience at start-up, migrated before
//! the first request.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;
use crate::start::StartError;
use crate::wait::wait_for;

/// Connects (waiting for the server up to the configured time) and applies `migrator`;
/// `background` connections are held by background work beside the requests' (see
/// [`DatabaseConfig::max_connections`]).
///
/// sqlx takes an advisory lock while migrating, so replicas starting together do not
/// race each other.
pub async fn connect_and_migrate(
    config: &DatabaseConfig,
    background: u32,
    migrator: &Migrator,
) -> Result<PgPool, StartError> {
    let pool = connect(config, background).await?;
    migrator.run(&pool).await.map_err(StartError::Migrate)?;
    Ok(pool)
}

/// Connects, waiting for the server up to the configured time.
pub async fn connect(config: &DatabaseConfig, background: u32) -> Result<PgPool, StartError> {
    let options = PgPoolOptions::new()
        .max_connections(config.max_connections(background))
        .acquire_timeout(Duration::from_secs(5));
    let timeout = Duration::from_secs(config.database_connect_timeout_seconds);
    wait_for("postgres", timeout, || {
        options.clone().connect_with(config.database_url.clone())
    })
    .await
    .map_err(|cause| StartError::Postgres {
        seconds: timeout.as_secs(),
        cause,
    })
}
