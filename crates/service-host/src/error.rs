//! Why a service built by the host did not start.

use service_kit::start::StartError;

/// A service that did not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("installing the outbox and inbox tables failed")]
    Schema(#[source] sqlx::Error),
    #[error("REDIS_URL is invalid")]
    RedisUrl(#[source] redis::RedisError),
    #[error("the {0} service consumes events but was given no effect to apply")]
    NoEffect(&'static str),
    #[error("the {0} service was given an effect but its spec consumes nothing")]
    NothingToConsume(&'static str),
}
