//! The stable API error codes: each one's HTTP status and its name on the
//! wire. Its own file so that job errors (`jobs::error`) can name a code a
//! peer relay gave without depending on the API answer built from them.

use http::StatusCode;

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
    pub(super) fn proxy_status(self) -> &'static str {
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
