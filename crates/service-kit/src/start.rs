//! Why a service could not start: its database, Redis or listen address, each with the
//! setting to look at and the cause.

use std::net::SocketAddr;

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not connect to PostgreSQL (DATABASE_URL) within {seconds}s")]
    Postgres {
        seconds: u64,
        #[source]
        cause: sqlx::Error,
    },
    #[error("database migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("REDIS_URL is invalid")]
    RedisUrl(#[source] redis::RedisError),
    #[error("could not connect to Redis (REDIS_URL) within {seconds}s")]
    Redis {
        seconds: u64,
        #[source]
        cause: redis::RedisError,
    },
    #[error("could not listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        cause: std::io::Error,
    },
}
