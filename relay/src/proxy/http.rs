//! The HTTP/1.1 proxy's requests (`proxy_listen`): what curl's `-x`,
//! Python's `proxies=`, Node's `ProxyAgent` and every crawler framework
//! speak. The API key is the password of `Proxy-Authorization: Basic`; the
//! username carries the targeting ([`super::username`]). A request in
//! absolute form (`GET http://site/path`), or one inside a `mode-fetch`
//! tunnel, becomes an ordinary job on any node kind, streamed both ways as
//! `/v1/raw` is.
//!
//! Errors are the ones proxy clients expect: `407` with
//! `Proxy-Authenticate` for missing or wrong credentials, `429` with
//! `Retry-After`, `403` for a used-up quota or a refused target, `5xx` with
//! an RFC 9209 `Proxy-Status` naming the error; a served answer carries its
//! node's id in `x-spareband-node`.

use super::username::{self, Targeting};
use crate::api::{authenticate_key, raw, request};
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{self, JobRequest};
use crate::AppState;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode};
use spareband_ledger::CustomerId;
use std::sync::Arc;

/// The realm proxy clients are told to authenticate for.
const REALM: &str = "Basic realm=\"spareband\"";

/// Headers about the customer's connection to the proxy, never sent on.
const PROXY_ONLY: &[&str] = &["proxy-authorization", "proxy-connection", "expect"];

/// An error as a proxy answers it: the API's JSON body, the status a proxy
/// client expects, and `Proxy-Status` (RFC 9209).
pub fn proxy_error(e: ApiError) -> Response {
    let code = e.code;
    let mut res = e.raw().into_response();
    match code {
        ErrorCode::Unauthorized => {
            *res.status_mut() = StatusCode::PROXY_AUTHENTICATION_REQUIRED;
            res.headers_mut().remove(http::header::WWW_AUTHENTICATE);
            res.headers_mut().insert(
                http::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static(REALM),
            );
        }
        // A target the policy refuses is the proxy denying the request.
        ErrorCode::TargetForbidden => {
            *res.status_mut() = StatusCode::FORBIDDEN;
            if let Some(v) = res.headers_mut().get("proxy-status").cloned() {
                let s = v.to_str().unwrap_or_default().replace(
                    "error=destination_ip_prohibited",
                    "error=http_request_denied",
                );
                if let Ok(v) = HeaderValue::from_str(&s) {
                    res.headers_mut().insert("proxy-status", v);
                }
            }
        }
        _ => {}
    }
    res
}

/// The customer and targeting of `Proxy-Authorization: Basic`.
pub(super) async fn credentials(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(CustomerId, Targeting), ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing or invalid proxy credentials: the username carries the targeting \
             (e.g. user-country-us), the password is the API key",
        )
    };
    let value = headers
        .get(http::header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(missing)?;
    let (user, key) = decoded.split_once(':').ok_or_else(missing)?;
    if key.is_empty() || key.len() > 256 {
        return Err(missing());
    }
    // The key first: a stranger learns nothing about the username rules.
    let customer = authenticate_key(state, key).await.map_err(|e| {
        if e.code == ErrorCode::Unauthorized {
            missing()
        } else {
            e
        }
    })?;
    let targeting = username::parse(user).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    Ok((customer, targeting))
}

/// Runs one request a customer sent through the proxy (in absolute form,
/// or inside a `mode-fetch` tunnel) as a job for `url`, and answers with
/// the target's answer.
pub(super) async fn forward(
    state: &Arc<AppState>,
    customer: CustomerId,
    targeting: &Targeting,
    url: &str,
    parts: &http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let method = request::request_method(&parts.method)?;
    let target = request::target(&state.policy, url)?;
    let forwarded = || {
        parts
            .headers
            .iter()
            .filter(|(n, _)| !PROXY_ONLY.contains(&n.as_str()))
    };
    let mut headers = request::headers(
        forwarded()
            .filter(|(n, _)| *n != http::header::AUTHORIZATION)
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
        false,
    )?;
    // Through a proxy, `Authorization` is the customer's credential for
    // the target (the key is in `Proxy-Authorization`): it goes on.
    for (n, v) in forwarded().filter(|(n, _)| *n == http::header::AUTHORIZATION) {
        if !spareband_protocol::is_valid_header_value(v.as_bytes()) {
            return Err(ApiError::invalid_request(
                "header 'authorization' has an invalid value",
            ));
        }
        headers.push((
            n.as_str().to_string(),
            bytes::Bytes::copy_from_slice(v.as_bytes()),
        ));
    }
    let body = raw::streamed(&parts.headers, body)?;
    let job = JobRequest {
        customer,
        method,
        target,
        headers,
        body,
        country: targeting.country.clone(),
        area: targeting.area()?,
        session_ttl: targeting.session_ttl(),
        session: targeting.session.clone(),
        timeout: request::timeout(None)?,
        permit: None,
        only: None,
        from_peer: false,
    };
    raw::answer(jobs::run(state, job).await?)
}
