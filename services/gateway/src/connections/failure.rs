//! How a request to a service can fail.

use std::io;

/// Why a request got no answer, or its answer's body broke off.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection could be made: the service is down or unreachable.
    #[error("could not connect to {address}: {error}")]
    Connect { address: String, error: io::Error },
    /// The connection failed, or the service closed it before answering in full.
    #[error("the connection to the service failed: {0}")]
    Io(#[from] io::Error),
    /// The service's answer is not HTTP/1.1 that can be read.
    #[error("the service's answer is malformed: {0}")]
    Malformed(&'static str),
    /// The request's body failed while it was being sent (the client went, or its body
    /// outgrew the limit).
    #[error("the request's body failed: {0}")]
    Body(#[source] axum::Error),
}

impl Failure {
    pub(super) fn closed(when: &'static str) -> Self {
        Self::Io(io::Error::new(io::ErrorKind::UnexpectedEof, when))
    }
}

/// How an exchange failed.
pub(super) enum Failed {
    /// The connection closed before anything of an answer came: a request without a
    /// body can go again elsewhere.
    Unanswered(Failure),
    Other(Failure),
}
