//! A JSON extractor and response whose rejections are problems.
//!
//! axum's own `Json` answers a bad body with plain text and uses 415 for a wrong content
//! type; the public API promises problem+json, 400 for anything that cannot be read and
//! 422 for a body that reads but does not fit.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::{self, DeserializeOwned, Deserializer};

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

/// Reads an optional JSON integer as JSON Schema defines one: a number without a
/// fractional part, `2` and `2.0` alike (generated clients, and JavaScript's numbers,
/// write either). `null` or absent is `None`. For a field
/// `#[serde(default, deserialize_with = "service_kit::json::integer")]`.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(Integer)
}

struct Integer;

impl<'de> de::Visitor<'de> for Integer {
    type Value = Option<i64>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        i64::try_from(value)
            .map(Some)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // -2^63 ≤ value < 2^63: every such float without a fraction is an i64.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value) {
            #[allow(clippy::cast_possible_truncation)] // integral and in range: exact
            Ok(Some(value as i64))
        } else {
            Err(E::custom("expected an integer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(default, deserialize_with = "super::integer")]
        n: Option<i64>,
    }

    fn read(json: &str) -> Result<Option<i64>, serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|body| body.n)
    }

    #[test]
    fn integers_are_numbers_without_a_fraction_whatever_their_notation() {
        assert_eq!(read(r#"{"n": 2}"#).unwrap(), Some(2));
        assert_eq!(read(r#"{"n": -2.0}"#).unwrap(), Some(-2));
        assert_eq!(read(r#"{"n": 1e3}"#).unwrap(), Some(1000));
        assert_eq!(read(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        assert_eq!(
            read(r#"{"n": 9223372036854775807}"#).unwrap(),
            Some(i64::MAX)
        );
        for bad in [
            r#"{"n": 2.5}"#,
            r#"{"n": "2"}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 9.3e18}"#,
            r#"{"n": true}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
