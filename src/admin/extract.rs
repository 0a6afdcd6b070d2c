//! Request extractors whose failures use the API's error format.
//!
//! axum's own `Json` and `Query` answer plain-text rejections; these answer
//! `{"detail": ...}` and name the JSON path of each bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{ApiError, FieldError};
use super::AdminState;
use crate::store::types::PageRequest;

/// A JSON request body, size-limited before it is read.
///
/// Malformed JSON is 400; well-formed JSON of the wrong shape (wrong types,
/// unknown or missing fields) is 422 with the path of the field.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AdminState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()`.
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AdminState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Reads the body, refusing a declared or actual size over the limit.
async fn read_body(req: Request, state: &AdminState) -> Result<Bytes, ApiError> {
    let limit = state.limits.body_limit_bytes;
    check_content_type(&req)?;
    if declared_length(&req).is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })
}

fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, not {essence:?} (curl: add -H 'Content-Type: application/json')"
        )))
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Deserializes a body in two steps so failures classify cleanly: bytes that
/// are not JSON at all are 400; JSON of the wrong shape is 422 with a path.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "request body is empty; send a JSON object".to_owned(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        ApiError::Validation(vec![FieldError {
            path: json_path(&err.path().to_string()),
            message: err.into_inner().to_string(),
        }])
    })
}

/// `a.b[0]` (serde_path_to_error) → `$.a.b[0]`; the root `.` → `$`.
fn json_path(path: &str) -> String {
    match path {
        "" | "." => "$".to_owned(),
        p if p.starts_with('[') => format!("${p}"),
        p => format!("$.{p}"),
    }
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Clone)]
pub(crate) struct ListParams(pub PageRequest);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Default and maximum page size.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 200;

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw: RawListParams = serde_urlencoded_query(parts.uri.query().unwrap_or(""))?;
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        Ok(Self(PageRequest {
            limit,
            after: raw.cursor.filter(|c| !c.is_empty()),
        }))
    }
}

fn serde_urlencoded_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::BadRequest("malformed query string".to_owned()))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))
}

/// Parses a positive integer path segment such as an agent version.
pub(crate) fn positive_int(segment: &str, what: &str) -> Result<i64, ApiError> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("{what} must be a positive integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        list: Vec<u32>,
    }

    fn parse(s: &'static str) -> Result<Sample, ApiError> {
        parse_json(&Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422_with_a_path() {
        assert!(matches!(parse("{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse(""), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse(r#"{"name":"a","list":[]} x"#),
            Err(ApiError::BadRequest(_))
        ));
        let Err(ApiError::Validation(errors)) = parse(r#"{"name":"a","list":[1,"x"]}"#) else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].path, "$.list[1]");
        let Err(ApiError::Validation(errors)) = parse(r#"{"name":"a","list":[],"extra":1}"#) else {
            panic!("expected a validation error");
        };
        assert!(errors[0].message.contains("unknown field"), "{errors:?}");
        assert!(parse(r#"{"name":"a","list":[1]}"#).is_ok());
    }
}
