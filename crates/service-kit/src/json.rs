//! A JSON extractor and response whose rejections are problems.
//!
//! axum's own `Json` answers a bad body with plain text and uses 415 for a wrong content
//! type; the public API promises problem+json, 400 for anything that cannot be read and
//! 422 for a body that reads but does not fit.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// `Json<T>` in, `Json<T>` out; use in place of `axum::Json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(problem_for(rejection)),
        }
    }
}

fn problem_for(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field and what was expected of it; the path is
            // the part before the first ": ".
            let message = error.body_text();
            let detail = message
                .split_once(": ")
                .map_or(message.as_str(), |(_, rest)| rest)
                .to_owned();
            let field = detail
                .split_once(": ")
                .map(|(path, _)| path.to_owned())
                .filter(|path| !path.contains(' '))
                .unwrap_or_else(|| "body".to_owned());
            Problem::validation(vec![FieldError::new(field, detail)])
        }
        JsonRejection::JsonSyntaxError(_) => {
            Problem::bad_request("The request body is not valid JSON.")
        }
        JsonRejection::MissingJsonContentType(_) => {
            Problem::bad_request("Expected a request with `Content-Type: application/json`.")
        }
        JsonRejection::BytesRejection(error) => {
            Problem::new(error.status(), "The request body could not be read.")
        }
        other => Problem::new(other.status(), other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
