//! `POST /v1/fetch`: a job described in JSON, answered in JSON with the body
//! in base64. Simple to call from any language; bodies are capped at
//! [`MAX_JSON_RESPONSE_BYTES`] because they are held in memory.

use super::{authenticate, request};
use crate::config::MAX_JSON_RESPONSE_BYTES;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{self, JobBody, JobRequest};
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;
use spareband_protocol::limits::MAX_REQUEST_BODY_BYTES;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Longest a JSON request body may take to arrive once its key is admitted:
/// 16 MiB at a slow 1 MiB/s, with room. A client that trickles its body
/// holds a concurrency slot of its own key, never more.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest JSON request: a base64 body at its limit plus room for the rest.
pub const MAX_JSON_REQUEST_BYTES: usize = (MAX_REQUEST_BODY_BYTES as usize / 3 + 1) * 4 + 64 * 1024;

/// The request document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    url: String,
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    body: Option<String>,
    country: Option<String>,
    city: Option<String>,
    region: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    asn: Option<u64>,
    session: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    session_ttl_secs: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    timeout_ms: Option<u64>,
}

/// A JSON integer as JSON Schema counts one: `71.0` is the integer 71 (the
/// OpenAPI document says `"type": "integer"`, and some encoders write every
/// number with a fraction). A real fraction, a negative number or one past
/// 2^53 (where a double stops being exact) is refused by name.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(v) = n.as_u64() {
        return Ok(Some(v));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0 => {
            Ok(Some(f as u64))
        }
        _ => Err(D::Error::custom(format_args!(
            "{n} is not a whole number from 0 to 2^53"
        ))),
    }
}

/// Turns a `/v1/fetch` document into a job, or the specific error it
/// deserves. Pure: no I/O, so it is fuzzed on its own.
pub fn parse(
    policy: &spareband_protocol::TargetPolicy,
    customer: spareband_ledger::CustomerId,
    raw: &[u8],
) -> Result<JobRequest, ApiError> {
    let doc: FetchRequest = serde_json::from_slice(raw)
        .map_err(|e| ApiError::invalid_request(format!("malformed JSON request: {e}")))?;
    let method = request::method(doc.method.as_deref())?;
    let target = request::target(policy, &doc.url)?;
    let headers = request::headers(
        doc.headers
            .iter()
            .flatten()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
        true,
    )?;
    let body = match doc.body {
        None => Bytes::new(),
        Some(b64) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| ApiError::invalid_request(format!("body is not valid base64: {e}")))?,
        ),
    };
    if body.len() as u64 > MAX_REQUEST_BODY_BYTES {
        return Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            format!("the body is larger than {MAX_REQUEST_BODY_BYTES} bytes"),
        ));
    }
    Ok(JobRequest {
        customer,
        method,
        target,
        headers,
        body: JobBody::Buffered(body),
        country: request::country(doc.country.as_deref())?,
        area: request::area(doc.city.as_deref(), doc.region.as_deref(), doc.asn)?,
        session: request::session(doc.session.as_deref())?,
        session_ttl: request::session_ttl(doc.session_ttl_secs)?,
        timeout: request::timeout(doc.timeout_ms)?,
        permit: None,
        only: None,
        from_peer: false,
    })
}

/// `POST /v1/fetch`.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match run(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(state: Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let customer = authenticate(&state, &parts.headers).await?;
    // The key's rate and concurrency limits apply before its body is read:
    // a key with concurrency N holds at most N JSON bodies in memory at once
    // (N × MAX_JSON_REQUEST_BYTES), however many requests it opens.
    let permit = jobs::admit(&state, customer).await?;
    let read = Limited::new(body, MAX_JSON_REQUEST_BYTES).collect();
    let raw = tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            ApiError::invalid_request(format!(
                "the request body did not arrive within {BODY_READ_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    ErrorCode::RequestTooLarge,
                    format!("the JSON request is larger than {MAX_JSON_REQUEST_BYTES} bytes"),
                )
            } else {
                ApiError::invalid_request("the request body could not be read")
            }
        })?
        .to_bytes();
    let mut job = parse(&state.policy, customer, &raw)?;
    drop(raw);
    job.permit = Some(permit);
    let mut res = jobs::run(&state, job).await?;
    res.body.set_limit(MAX_JSON_RESPONSE_BYTES);
    let mut body = res.body;
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(ApiError::from)?.into_data() {
            collected.extend_from_slice(&data);
        }
    }
    let (up, down) = body.bytes();
    let headers: Vec<[String; 2]> = res
        .head
        .headers
        .iter()
        .filter(|(n, _)| !request::is_hop_by_hop(n))
        .map(|(n, v)| [n.clone(), String::from_utf8_lossy(v).into_owned()])
        .collect();
    Ok(axum::Json(json!({
        "status": res.head.status,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(&collected),
        "node": res.node.to_string(),
        "job": res.job.to_string(),
        "bytes": {"up": up, "down": down},
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use spareband_protocol::TargetPolicy;

    fn check(raw: &[u8]) -> Result<(), TestCaseError> {
        let policy = TargetPolicy::public_only();
        if let Ok(job) = parse(&policy, 1, raw) {
            prop_assert!(policy.check(job.target.url.as_str()).is_ok());
            if let JobBody::Buffered(b) = &job.body {
                prop_assert!(b.len() as u64 <= MAX_REQUEST_BODY_BYTES);
            }
            for (name, _) in &job.headers {
                prop_assert_eq!(
                    request::header_rule(name),
                    request::HeaderRule::Forward,
                    "{} went through",
                    name
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_bytes_get_an_answer_and_never_a_forbidden_job(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(&raw)?;
        }

        #[test]
        fn documents_with_hostile_fields_never_make_a_forbidden_job(
            url in prop_oneof![
                Just("https://example.com/".to_string()),
                Just("http://127.1/".to_string()),
                Just("http://[::ffff:10.0.0.1]/".to_string()),
                "\\PC{0,40}",
            ],
            method in prop_oneof![Just(None), Just(Some("GET".to_string())), "\\PC{0,10}".prop_map(Some)],
            header in prop_oneof![
                Just("accept".to_string()),
                Just("x-forwarded-for".to_string()),
                Just("Proxy-Authorization".to_string()),
                Just("sec-fetch-site".to_string()),
                "[a-zA-Z-]{1,20}",
            ],
            value in "\\PC{0,30}",
            body in proptest::option::of("[A-Za-z0-9+/=]{0,40}"),
            timeout in proptest::option::of(any::<u64>()),
        ) {
            let doc = serde_json::json!({
                "url": url,
                "method": method,
                "headers": { header: value },
                "body": body,
                "timeout_ms": timeout,
            });
            check(doc.to_string().as_bytes())?;
        }
    }

    /// JSON Schema counts `7315.0` as an integer, and so does the document;
    /// Schemathesis found it refused. A real fraction is still refused.
    #[test]
    fn a_whole_number_written_with_a_fraction_is_an_integer() {
        let policy = TargetPolicy::public_only();
        let doc = br#"{"url": "https://example.com/", "timeout_ms": 7315.0, "asn": 3.0}"#;
        let job = parse(&policy, 1, doc).expect("7315.0 is a whole number");
        assert_eq!(job.timeout, std::time::Duration::from_millis(7315));
        for bad in ["7315.5", "-1.0", "1e300"] {
            let doc = format!(r#"{{"url": "https://example.com/", "timeout_ms": {bad}}}"#);
            let Err(err) = parse(&policy, 1, doc.as_bytes()) else {
                panic!("{bad} was taken as a whole number");
            };
            assert!(
                err.message.contains("not a whole number"),
                "{bad}: {}",
                err.message
            );
        }
    }
}
