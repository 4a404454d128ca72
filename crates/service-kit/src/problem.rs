//! RFC 9457 problem details: the only shape an error response takes in Switchyard.
//!
//! A handler returns `Result<_, Problem>` (or its own error type that converts into one).
//! Server-side failures are logged here with their whole cause chain and reach the
//! client as a bare 500: the client learns that it was not their fault, never why.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the client sees it: a status, a human-readable `detail`, and optionally
/// field-level `errors` or other extension members.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    extensions: Map<String, Value>,
}

/// One field's validation message, listed under `errors` in a 422 problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The request field, e.g. `email`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            extensions: Map::new(),
        }
    }

    /// 400: the request could not be read (malformed JSON, wrong content type).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no credentials, or bad ones.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: authenticated, but not allowed to do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: missing, or owned by someone else (the two are never told apart).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: well-formed but invalid, with one message per offending field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with(
            "errors",
            serde_json::to_value(errors).unwrap_or(Value::Null),
        )
    }

    /// 500: something broke on our side. The error and its causes are logged here; the
    /// client gets a generic message.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::error!(error = format!("{error:#}"), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred.",
        )
    }

    /// 503: a dependency of this service is unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// 405 with the `Allow` header naming the methods that are (RFC 9110 §15.5.6
    /// requires it), as a response: the header is not part of the problem's body.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        let mut response = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Only {allow} allowed here."),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    }

    /// Adds an extension member (RFC 9457 §3.2), e.g. `errors` or `failing`.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The JSON body, carrying the id of the request being served when there is one.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::from("about:blank"));
        body.insert(
            "title".into(),
            Value::from(self.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::from(self.detail.clone()));
        body.insert(
            "request_id".into(),
            request_id::current().map_or(Value::Null, Value::from),
        );
        for (key, value) in &self.extensions {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        Problem::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_problem_lists_every_field_and_joins_them_in_detail() {
        let problem = Problem::validation(vec![
            FieldError::new("email", "is not an email address"),
            FieldError::new("name", "must not be empty"),
        ]);
        let body = problem.body();
        assert_eq!(body["status"], 422);
        assert_eq!(body["title"], "Unprocessable Entity");
        assert_eq!(
            body["detail"],
            "email: is not an email address; name: must not be empty"
        );
        assert_eq!(body["errors"][1]["field"], "name");
    }

    #[test]
    fn an_internal_problem_does_not_reveal_its_cause() {
        let problem = Problem::internal(anyhow::anyhow!("password column missing"));
        assert_eq!(problem.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.body().to_string().contains("password column"));
    }

    #[test]
    fn extension_members_cannot_overwrite_the_standard_ones() {
        let problem = Problem::not_found("no such user").with("status", Value::from(200));
        assert_eq!(problem.body()["status"], 404);
    }
}
