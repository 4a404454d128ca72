//! How a handler (or an effect) says it did not apply an event.

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again later (a database or peer outage): the entry stays pending.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (a payload that does not parse): dead-lettered at once.
    #[error("{0:#}")]
    Poison(anyhow::Error),
}

impl HandlerError {
    /// A failure worth retrying: `.map_err(HandlerError::retry)`.
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Self::Retry(error.into())
    }

    /// A failure that will never succeed: `.map_err(HandlerError::poison)`.
    pub fn poison(error: impl Into<anyhow::Error>) -> Self {
        Self::Poison(error.into())
    }
}

/// Why events were not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("an envelope would not encode")]
    Encode(#[from] serde_json::Error),
    #[error("Redis refused the XADD")]
    Redis(#[from] redis::RedisError),
    #[error("XADD returned no id")]
    NoId,
}

/// Why a relay pass failed; the rows stay unpublished for the next.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reading or marking the outbox")]
    Outbox(#[from] sqlx::Error),
    #[error("publishing the outbox's rows")]
    Publish(#[from] PublishError),
}

impl From<redis::RedisError> for RelayError {
    fn from(error: redis::RedisError) -> Self {
        Self::Publish(PublishError::Redis(error))
    }
}

/// What a failure worth retrying was doing: `.or_retry(|| format!("reserving order
/// {id}"))`, as `anyhow`'s `with_context`, so the log says what failed for which event.
pub trait OrRetry<T> {
    fn or_retry<C>(self, doing: impl FnOnce() -> C) -> Result<T, HandlerError>
    where
        C: std::fmt::Display + Send + Sync + 'static;
}

impl<T, E: Into<anyhow::Error>> OrRetry<T> for Result<T, E> {
    fn or_retry<C>(self, doing: impl FnOnce() -> C) -> Result<T, HandlerError>
    where
        C: std::fmt::Display + Send + Sync + 'static,
    {
        self.map_err(|error| HandlerError::Retry(error.into().context(doing())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_failure_says_what_it_was_doing_before_why() {
        let failed: Result<(), std::io::Error> = Err(std::io::Error::other("connection reset"));
        let error = failed.or_retry(|| "reserving order 7").unwrap_err();
        assert!(matches!(error, HandlerError::Retry(_)));
        assert_eq!(error.to_string(), "reserving order 7: connection reset");
    }
}
