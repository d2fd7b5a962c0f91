//! `ApiError`: the one error type of the HTTP layer. Each variant has its
//! status; the body is always `{"error": {"code", "message"}}`. Internal
//! errors are logged in full and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_app::AppError;
use kefu_core::ValidationError;
use kefu_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Too many unsent uploads held at once (429, `upload_quota`).
    #[error("{0}")]
    UploadQuota(String),
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited { .. } | ApiError::UploadQuota(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Validation(_) | ApiError::Unprocessable(_) => "validation_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::UploadQuota(_) => "upload_quota",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let ApiError::Validation(v) = &self {
            error["field"] = json!(v.field);
        }
        let mut res = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// Each refusal of the application layer, as the API answers it.
impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ApiError::NotFound,
            AppError::Unauthorized => ApiError::Unauthorized,
            AppError::Forbidden(m) => ApiError::Forbidden(m),
            AppError::Invalid(v) => ApiError::Validation(v),
            AppError::Rejected(m) => ApiError::Unprocessable(m),
            AppError::Conflict(m) => ApiError::Conflict(m),
            AppError::Limited { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            AppError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// Reads go to the store directly; their errors read as the application
/// layer reads them (one table of constraint names, in kefu-app).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
