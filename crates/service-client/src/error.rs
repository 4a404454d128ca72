//! One error type for every way a call can fail, saying whose fault it was and whether
//! it was retried, so callers decide by matching, never by reading strings.

use bytes::Bytes;
use http::StatusCode;

/// Whose fault a failure was (after pingora-error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer failed: 5xx, timeout, connection trouble, its breaker open.
    Upstream,
    /// The peer refused our request as wrong: a 4xx other than 429.
    Downstream,
    /// Our side: a body that would not encode or a response that would not decode.
    Internal,
}

/// What happened.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// An attempt took longer than its timeout.
    #[error("timed out")]
    Timeout,
    /// The call's overall deadline (or the served request's) passed.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The peer's circuit breaker is open; no request was sent.
    #[error("circuit open")]
    CircuitOpen,
    /// The peer answered with a non-2xx status.
    #[error("HTTP {status}")]
    Status { status: StatusCode, body: Bytes },
    /// The connection failed or broke (the message names every cause: the connection
    /// refused, reset, the name not found).
    #[error("transport error: {}", service_kit::telemetry::causes(.0))]
    Transport(#[source] reqwest::Error),
    /// A retry was due but the peer's retry budget is spent; carries the last failure.
    #[error("retry budget exhausted after: {0}")]
    RetryBudgetExhausted(Box<ErrorKind>),
    /// The response body was not what the caller expected.
    #[error("could not decode the response: {0}")]
    Decode(#[source] serde_json::Error),
    /// The request could not be built (e.g. a body that would not serialise).
    #[error("invalid request: {0}")]
    InvalidRequest(#[source] Invalid),
}

/// Why a client or a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the base URL {url} is invalid: {cause}")]
    BaseUrl {
        url: String,
        #[source]
        cause: url::ParseError,
    },
    #[error("the base URL {0} is not an http(s) URL")]
    NotHttp(String),
    #[error("the service key is not a valid header value")]
    ServiceKey,
    #[error("the body could not be serialised: {0}")]
    Body(#[source] serde_json::Error),
    #[error("the idempotency key is not a valid header value")]
    IdempotencyKey,
}

/// A failed call to a peer.
#[derive(Debug, thiserror::Error)]
#[error("call to {peer} failed after {attempts} attempt(s): {kind}")]
pub struct Error {
    pub peer: &'static str,
    pub kind: ErrorKind,
    /// Requests actually sent (0 when the breaker refused the first).
    pub attempts: u32,
}

impl Error {
    /// Whose fault it was.
    pub fn fault(&self) -> Fault {
        fault_of(&self.kind)
    }

    /// Whether the client retried before giving up.
    pub fn retried(&self) -> bool {
        self.attempts > 1
    }

    /// The peer's status, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            ErrorKind::RetryBudgetExhausted(last) => match last.as_ref() {
                ErrorKind::Status { status, .. } => Some(*status),
                _ => None,
            },
            _ => None,
        }
    }

    /// The peer's response body, when it answered.
    pub fn body(&self) -> Option<&Bytes> {
        match &self.kind {
            ErrorKind::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether the peer was unreachable, too slow or failing, as opposed to refusing.
    pub fn is_unavailable(&self) -> bool {
        self.fault() == Fault::Upstream
    }
}

fn fault_of(kind: &ErrorKind) -> Fault {
    match kind {
        ErrorKind::Timeout
        | ErrorKind::DeadlineExceeded
        | ErrorKind::CircuitOpen
        | ErrorKind::Transport(_) => Fault::Upstream,
        ErrorKind::Status { status, .. } => {
            if status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS {
                Fault::Upstream
            } else {
                Fault::Downstream
            }
        }
        ErrorKind::RetryBudgetExhausted(last) => fault_of(last),
        ErrorKind::Decode(_) | ErrorKind::InvalidRequest(_) => Fault::Internal,
    }
}

impl From<Error> for service_kit::Problem {
    /// What a service answers its own caller when a peer call fails: the peer's
    /// unavailability is a 502/503/504, never the caller's fault.
    fn from(error: Error) -> Self {
        use service_kit::Problem;
        match &error.kind {
            ErrorKind::Timeout | ErrorKind::DeadlineExceeded => {
                tracing::warn!(%error, "peer call timed out");
                Problem::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("The {} service did not answer in time.", error.peer),
                )
            }
            ErrorKind::CircuitOpen
            | ErrorKind::Transport(_)
            | ErrorKind::RetryBudgetExhausted(_) => {
                tracing::warn!(%error, "peer unavailable");
                Problem::unavailable(format!("The {} service is unavailable.", error.peer))
            }
            ErrorKind::Status { status, .. }
                if status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS =>
            {
                tracing::warn!(%error, "peer failed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    format!("The {} service failed.", error.peer),
                )
            }
            _ => Problem::internal(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        Error {
            peer: "user",
            kind: ErrorKind::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: Bytes::new(),
            },
            attempts: 1,
        }
    }

    #[test]
    fn a_4xx_is_our_fault_and_a_5xx_or_429_the_peers() {
        assert_eq!(status(404).fault(), Fault::Downstream);
        assert_eq!(status(422).fault(), Fault::Downstream);
        assert_eq!(status(503).fault(), Fault::Upstream);
        assert_eq!(status(429).fault(), Fault::Upstream);
    }

    #[test]
    fn a_peer_failure_becomes_a_gateway_problem() {
        assert_eq!(
            service_kit::Problem::from(status(500)).status(),
            StatusCode::BAD_GATEWAY
        );
        let timeout = Error {
            peer: "user",
            kind: ErrorKind::Timeout,
            attempts: 3,
        };
        assert!(timeout.retried());
        assert_eq!(
            service_kit::Problem::from(timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let open = Error {
            peer: "user",
            kind: ErrorKind::CircuitOpen,
            attempts: 0,
        };
        assert_eq!(
            service_kit::Problem::from(open).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
