//! Extractors that answer bad input in the API's own error format: JSON with
//! the position of a syntax error (400), a type or unknown-field error (422),
//! an over-long body (413); malformed path ids and query strings (400), and
//! query values longer than [`MAX_QUERY_VALUE_CHARS`] (422).

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match r {
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", source_text(&e)))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::Unprocessable(format!("invalid JSON body: {}", source_text(&e)))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::BadRequest("expected Content-Type: application/json".into())
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// serde_json's own message ("expected `,` at line 1 column 9") without
/// axum's prefix.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    inner.to_string()
}

pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// The longest value any query parameter may have, in characters. Search
/// texts, tags, identity values, cursors and tokens are all far shorter;
/// unbounded, a 50,000-character search failed inside SQLite's LIKE (its
/// pattern limit) as a 500. Checked here, once, so that every endpoint and
/// every parameter added later is bounded too.
pub const MAX_QUERY_VALUE_CHARS: usize = 500;

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        check_query_lengths(parts.uri.query().unwrap_or_default())?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// 422 naming the first parameter (or name) over [`MAX_QUERY_VALUE_CHARS`].
/// A query string that does not decode is left to the deserializer's 400.
fn check_query_lengths(raw: &str) -> Result<(), ApiError> {
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(raw) else {
        return Ok(());
    };
    for (name, value) in &pairs {
        if name.chars().count() > MAX_QUERY_VALUE_CHARS {
            return Err(ApiError::Unprocessable(format!(
                "query parameter names: at most {MAX_QUERY_VALUE_CHARS} characters"
            )));
        }
        if value.chars().count() > MAX_QUERY_VALUE_CHARS {
            return Err(ApiError::Unprocessable(format!(
                "{name}: at most {MAX_QUERY_VALUE_CHARS} characters"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_bounded_in_characters() {
        let at_limit = "字".repeat(MAX_QUERY_VALUE_CHARS);
        let encoded = |v: &str| serde_urlencoded::to_string([("q", v)]).expect("encode");
        for ok in [
            String::new(),
            "q=%E7%8E%8B&limit=5".to_string(),
            encoded(&at_limit),
            "%%%=&&=".to_string(),
        ] {
            assert!(check_query_lengths(&ok).is_ok(), "{ok}");
        }
        for (bad, named) in [
            (encoded(&format!("{at_limit}x")), "q:"),
            (format!("tag=a&q={}", "a".repeat(50_001)), "q:"),
            (format!("cursor={}", "%25".repeat(501)), "cursor:"),
            (format!("{}=1", "k".repeat(501)), "names"),
        ] {
            match check_query_lengths(&bad) {
                Err(ApiError::Unprocessable(m)) => {
                    assert!(m.contains(named) && m.contains("500"), "{m}")
                }
                other => panic!("{bad:.40}: {other:?}"),
            }
        }
    }
}
