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
