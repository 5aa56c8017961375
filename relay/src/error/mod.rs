//! API errors: one type, one HTTP status and one stable code each, rendered as
//! `{"error": {"code", "message"}}`. Raw mode adds an RFC 9209 `Proxy-Status`
//! header so HTTP tooling can tell a relay error from the target's own answer.

use crate::jobs::JobError;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use serde_json::json;

mod code;

pub use code::ErrorCode;

/// An error answered to an API caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Which error.
    pub code: ErrorCode,
    /// What happened and what to do, in plain words.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
    /// The methods to list in `Allow`, for a 405 (RFC 9110 requires it).
    pub allow: Option<&'static [&'static str]>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or invalid API key: send 'Authorization: Bearer <key>'",
        )
    }

    /// The same error with a `Proxy-Status` header (raw mode).
    pub fn raw(self) -> RawError {
        RawError(self)
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let code = match &e {
            JobError::NoNode(_) => ErrorCode::NoNodeAvailable,
            JobError::NodeFailed(_) => ErrorCode::NodeFailed,
            JobError::Timeout(_) => ErrorCode::Timeout,
            JobError::ResponseTooLarge(_) => ErrorCode::ResponseTooLarge,
            JobError::RequestTooLarge => ErrorCode::RequestTooLarge,
            JobError::Forbidden(_) => ErrorCode::TargetForbidden,
            JobError::BadRequest(_) | JobError::RequestUnreadable => ErrorCode::InvalidRequest,
            JobError::RateLimited(_) => ErrorCode::RateLimited,
            JobError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            JobError::LedgerFull => ErrorCode::LedgerUnavailable,
            JobError::Peer(p) => p.code,
        };
        let mut err = ApiError::new(code, e.to_string());
        if let (JobError::RateLimited(_) | JobError::LedgerFull | JobError::Peer(_), Some(wait)) =
            (&e, e.retry_after())
        {
            err.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        let mut res = (self.code.status(), axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(Ok(v)) = self.allow.map(|m| HeaderValue::from_str(&m.join(", "))) {
            res.headers_mut().insert(http::header::ALLOW, v);
        }
        if self.code == ErrorCode::Unauthorized {
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"spareband\""),
            );
        }
        res
    }
}

/// An [`ApiError`] in raw mode: the same JSON plus `Proxy-Status`.
#[derive(Debug)]
pub struct RawError(pub ApiError);

impl IntoResponse for RawError {
    fn into_response(self) -> Response {
        let details: String = self
            .0
            .message
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
            .take(200)
            .collect();
        let value = format!(
            "spareband; error={}; details=\"{}\"",
            self.0.code.proxy_status(),
            details
        );
        let mut res = self.0.into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert("proxy-status", v);
        }
        res
    }
}
