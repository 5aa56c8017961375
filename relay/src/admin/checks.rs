//! Request checks the sign-in page and the guard both make: the sign-in
//! cookie, whether a request comes from the dashboard's own pages, and the
//! answer when the dashboard is off.

use super::auth::SIGN_IN_COOKIE;
use crate::error::{ApiError, ErrorCode};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap};

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
        .find(|(k, _)| *k == SIGN_IN_COOKIE)
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
