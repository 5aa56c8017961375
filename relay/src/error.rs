//! API errors: one type, one HTTP status and one stable code each, rendered as
//! `{"error": {"code", "message"}}`. Raw mode adds an RFC 9209 `Proxy-Status`
//! header so HTTP tooling can tell a relay error from the target's own answer.

use crate::jobs::JobError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// Stable machine-readable error codes (documented in the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request is malformed.
    InvalidRequest,
    /// 400: the target URL is not allowed.
    TargetForbidden,
    /// 401: missing or wrong API key (or no admin session).
    Unauthorized,
    /// 403: authenticated, but this request is not allowed (a cross-site or
    /// CSRF-less admin request).
    Forbidden,
    /// 403: the key's monthly quota is used up.
    QuotaExceeded,
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint does not take this method.
    MethodNotAllowed,
    /// 413: the request (or its body) is too large.
    RequestTooLarge,
    /// 502: the node failed.
    NodeFailed,
    /// 502: the response is too large for the mode.
    ResponseTooLarge,
    /// 429: too many requests; `Retry-After` says when to try again.
    RateLimited,
    /// 503: no node can take the job.
    NoNodeAvailable,
    /// 503: the relay cannot record usage right now (its database has been
    /// away long enough to fill its bound of queued records).
    LedgerUnavailable,
    /// 504: the deadline passed.
    Timeout,
    /// 500: the relay itself failed.
    Internal,
}

impl ErrorCode {
    /// Every code, for the OpenAPI consistency test.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidRequest,
        ErrorCode::TargetForbidden,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::QuotaExceeded,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTooLarge,
        ErrorCode::NodeFailed,
        ErrorCode::ResponseTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::NoNodeAvailable,
        ErrorCode::LedgerUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    /// The code as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::TargetForbidden => "target_forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::NodeFailed => "node_failed",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::NoNodeAvailable => "no_node_available",
            ErrorCode::LedgerUnavailable => "ledger_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code its JSON name stands for.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }

    /// The HTTP status for the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::TargetForbidden => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::QuotaExceeded => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::NodeFailed | ErrorCode::ResponseTooLarge => StatusCode::BAD_GATEWAY,
            ErrorCode::NoNodeAvailable | ErrorCode::LedgerUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 9209 error type for `Proxy-Status`.
    fn proxy_status(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::RequestTooLarge => "http_request_error",
            ErrorCode::NotFound | ErrorCode::MethodNotAllowed => "http_request_error",
            ErrorCode::TargetForbidden => "destination_ip_prohibited",
            ErrorCode::Unauthorized | ErrorCode::Forbidden => "http_request_denied",
            ErrorCode::RateLimited | ErrorCode::QuotaExceeded => "http_request_denied",
            ErrorCode::NodeFailed => "destination_unavailable",
            ErrorCode::ResponseTooLarge => "http_response_body_size",
            ErrorCode::NoNodeAvailable => "connection_limit_reached",
            ErrorCode::Timeout => "http_response_timeout",
            ErrorCode::Internal | ErrorCode::LedgerUnavailable => "proxy_internal_error",
        }
    }
}

/// An error answered to an API caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Which error.
    pub code: ErrorCode,
    /// What happened and what to do, in plain words.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
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
