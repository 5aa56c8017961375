//! `/v1/raw?url=…`: any method; the customer's request goes to the target and
//! the target's status, headers and body come back as they are, streamed
//! without buffering the whole body.

use super::{authenticate, request};
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{self, JobBody, JobRequest};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use spareband_protocol::limits::MAX_REQUEST_BODY_BYTES;
use std::sync::Arc;

/// `/v1/raw`.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match run(state, req).await {
        Ok(r) => r,
        Err(e) => e.raw().into_response(),
    }
}

#[derive(Default)]
struct Params {
    url: Option<String>,
    country: Option<String>,
    city: Option<String>,
    region: Option<String>,
    asn: Option<u64>,
    session: Option<String>,
    session_ttl_secs: Option<u64>,
    timeout_ms: Option<u64>,
}

fn params(query: Option<&str>) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "url" => p.url = Some(v),
            "country" => p.country = Some(v),
            "city" => p.city = Some(v),
            "region" => p.region = Some(v),
            "asn" => {
                p.asn = Some(v.parse().map_err(|_| {
                    ApiError::invalid_request(format!("asn '{v}' is not a number"))
                })?)
            }
            "session" => p.session = Some(v),
            "session_ttl_secs" => {
                p.session_ttl_secs = Some(v.parse().map_err(|_| {
                    ApiError::invalid_request(format!("session_ttl_secs '{v}' is not a number"))
                })?)
            }
            "timeout_ms" => {
                p.timeout_ms = Some(v.parse().map_err(|_| {
                    ApiError::invalid_request(format!("timeout_ms '{v}' is not a number"))
                })?)
            }
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown query parameter '{other}' (percent-encode the target url so its own query stays inside it)"
                )))
            }
        }
    }
    Ok(p)
}

async fn run(state: Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let customer = authenticate(&state, &parts.headers).await?;
    let p = params(parts.uri.query())?;
    let url = p
        .url
        .ok_or_else(|| ApiError::invalid_request("the 'url' query parameter is required"))?;
    let method = request::request_method(&parts.method)?;
    let target = request::target(&state.policy, &url)?;
    let headers = request::headers(
        parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
        false,
    )?;
    let body = streamed(&parts.headers, body)?;
    let job = JobRequest {
        customer,
        method,
        target,
        headers,
        body,
        country: request::country(p.country.as_deref())?,
        area: request::area(p.city.as_deref(), p.region.as_deref(), p.asn)?,
        session: request::session(p.session.as_deref())?,
        session_ttl: request::session_ttl(p.session_ttl_secs)?,
        timeout: request::timeout(p.timeout_ms)?,
        permit: None,
        only: None,
        from_peer: false,
    };
    answer(jobs::run(&state, job).await?)
}

/// A customer's request body as a job streams it: none, or read as the job
/// goes, refused up front when its `Content-Length` is over the limit.
pub(crate) fn streamed(headers: &http::HeaderMap, body: Body) -> Result<JobBody, ApiError> {
    let length: Option<u64> = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if length.is_some_and(|l| l > MAX_REQUEST_BODY_BYTES) {
        return Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("the body is larger than {MAX_REQUEST_BODY_BYTES} bytes"),
        ));
    }
    let has_body =
        length.is_some_and(|l| l > 0) || headers.contains_key(http::header::TRANSFER_ENCODING);
    Ok(if has_body {
        JobBody::Streaming { body, length }
    } else {
        JobBody::Empty
    })
}

/// The target's answer as it came, streamed, with the node and job named.
pub(crate) fn answer(res: jobs::JobResponse) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(res.head.status)
        .map_err(|_| ApiError::new(ErrorCode::NodeFailed, "the node sent an invalid status"))?;
    let mut out = Response::new(Body::new(res.body));
    *out.status_mut() = status;
    let h = out.headers_mut();
    for (name, value) in &res.head.headers {
        if request::is_hop_by_hop(name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            h.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&res.node.to_string()) {
        h.insert("x-spareband-node", v);
    }
    if let Ok(v) = HeaderValue::from_str(&res.job.to_string()) {
        h.insert("x-spareband-job", v);
    }
    Ok(out)
}
