//! The one check in front of every protected dashboard route: a signed-in
//! admin, and for anything but GET and HEAD a same-origin request carrying
//! the sign-in's CSRF token.

use super::auth::{self, SESSION_COOKIE};
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method};
use std::sync::Arc;

pub(super) fn disabled() -> Response {
    ApiError::new(
        ErrorCode::NotFound,
        "the admin dashboard is off: start the relay with admin_token in its config or SPAREBAND_ADMIN_TOKEN set",
    )
    .into_response()
}

pub(super) fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether a state-changing request comes from the dashboard's own pages:
/// browsers say so in `Sec-Fetch-Site` and `Origin`.
pub(super) fn same_origin(req_headers: &HeaderMap, authority: Option<&str>) -> bool {
    if let Some(site) = req_headers.get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match req_headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let host =
                authority.or_else(|| req_headers.get(header::HOST).and_then(|h| h.to_str().ok()));
            match (origin.split_once("://"), host) {
                (Some((scheme, rest)), Some(host)) => {
                    (scheme == "https" || scheme == "http") && rest.eq_ignore_ascii_case(host)
                }
                _ => false,
            }
        }
        Some(Err(_)) => false,
    }
}

fn forbidden(message: &str) -> Response {
    ApiError::new(ErrorCode::Forbidden, message).into_response()
}

/// The one check in front of every protected route.
pub(super) async fn require_sign_in(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    let session = cookie(req.headers()).and_then(|c| admin.auth.session(&c));
    let Some(session) = session else {
        if req.uri().path().starts_with("/admin/api/") {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "sign in to the dashboard first: POST the admin token to /admin/login",
            )
            .into_response();
        }
        return super::pages::sign_in_first();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let authority = req.uri().authority().map(|a| a.as_str().to_string());
        if !same_origin(req.headers(), authority.as_deref()) {
            return forbidden("cross-site requests are refused");
        }
        let csrf_ok = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| auth::same(v, &session.csrf));
        if !csrf_ok {
            return forbidden("missing or wrong x-csrf-token header");
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_same_origin_posts_pass() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("relay.example:8443"));
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://relay.example:8443"),
        );
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, None));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, None));
    }
}
