//! `?limit=N` on list routes: how many of the newest items to return.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::Problem;
use crate::problem::FieldError;

/// Items a list returns unless `limit` says otherwise.
pub const DEFAULT: i64 = 100;
/// Most items one list returns.
pub const MAX: i64 = 1000;

/// The `limit` query parameter: 1 to [`MAX`], [`DEFAULT`] when absent; a 422 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Limit {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("limit="));
        match value {
            None => Ok(Self(DEFAULT)),
            Some(value) => value
                .parse()
                .ok()
                .filter(|n| (1..=MAX).contains(n))
                .map(Self)
                .ok_or_else(|| {
                    Problem::validation(vec![FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX}"),
                    )])
                }),
        }
    }
}
