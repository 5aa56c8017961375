//! One job in the browser: the shared target policy, then `fetch` with no
//! credentials and no cache, then the response body read chunk by chunk from
//! its `ReadableStream` and sent under the relay's credit. Bytes are counted
//! with the protocol's metering functions, exactly as the relay counts them.
//!
//! A job knows nothing of the node that runs it beyond [`JobHost`]: it
//! returns a [`JobOutcome`], and the caller does the bookkeeping (statistics,
//! receipts, saving, the `Fail` frame), as the native node's connection does.

use crate::js;
use crate::weburl::Url;
use bytes::Bytes;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{MAX_CHUNK_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT};
use spareband_protocol::metering::request_head_bytes;
use spareband_protocol::metering::ResponseSize;
use spareband_protocol::weburl::WebUrl;
use spareband_protocol::Checked;
use spareband_protocol::{
    is_hop_by_hop, FailReason, Header, JobId, NodeMessage, RequestHead, ResponseHead, StreamId,
    TargetPolicy,
};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ReadableStreamDefaultReader, RequestCache, RequestCredentials, RequestInit, RequestRedirect,
    Response,
};

/// Longest a browser job may take: a browser may stop a background that waits
/// more than 30 s on a `fetch`.
pub const BROWSER_JOB_DEADLINE_MS: u32 = 25_000;
/// Stop reading the target while this much is queued on the WebSocket.
const WS_HIGH_WATER: u32 = 4 * 1024 * 1024;

/// Why a job failed, as the relay is told in a `Fail` frame.
pub(crate) type Failure = (FailReason, String);

/// What a job needs from the node running it. Frames go to the connection the
/// job came on (and nowhere once it closed); the checks read the node's
/// current settings and the relay's current rules.
pub(crate) trait JobHost {
    /// Sends a frame on the job's connection; false when it is gone.
    fn send(&self, msg: &NodeMessage) -> bool;
    /// Bytes queued on the WebSocket, not yet sent.
    fn queued_bytes(&self) -> u32;
    /// Books `n` bytes through the owner's speed limits; the milliseconds
    /// to wait before sending them.
    fn pace(&self, n: usize) -> u32;
    /// Why the owner's block list or the relay's deny list refuses `host`.
    fn refuses_host(&self, host: &str) -> Option<String>;
    /// Counts one request to `host`'s site; an error when over the relay's cap.
    fn count_site(&self, host: &str) -> Result<(), String>;
    /// The redirect guard's `verdict(url, sinceMs)` (see `guard.js`), if set.
    fn verdict_hook(&self) -> Option<js_sys::Function>;
    /// The target policy of this build.
    fn policy(&self) -> Rc<TargetPolicy>;
}

/// How a job ended, for the caller's bookkeeping.
pub(crate) struct JobOutcome {
    /// The job, for its receipt.
    pub job: JobId,
    /// Its stream on the connection.
    pub stream: StreamId,
    /// Metered `(up, down)` of a delivered job, or why it failed (with the
    /// deadline already accounted for).
    pub result: Result<(u64, u64), Failure>,
}

/// Runs a job to its end. The caller sends `Fail` for a failed job unless the
/// relay cancelled it.
pub(crate) async fn run(
    host: impl JobHost,
    head: RequestHead,
    credit: Rc<CreditGate>,
    abort: web_sys::AbortController,
    body: Option<futures::channel::oneshot::Receiver<Option<Vec<u8>>>>,
) -> JobOutcome {
    let stream = head.stream;
    let job = head.job;
    let deadline = head.deadline_ms.min(BROWSER_JOB_DEADLINE_MS);
    let timed_out = Rc::new(std::cell::Cell::new(false));
    {
        let abort = abort.clone();
        let timed_out = timed_out.clone();
        wasm_bindgen_futures::spawn_local(async move {
            js::sleep(deadline).await;
            timed_out.set(true);
            abort.abort();
        });
    }
    let result = execute(&host, head, &credit, &abort, body).await;
    // Stop the deadline timer's effect and free any pending reader.
    abort.abort();
    let result = result.map_err(|failure| {
        if timed_out.get() {
            (
                FailReason::Timeout,
                format!("the job's deadline of {deadline} ms passed at the node"),
            )
        } else {
            failure
        }
    });
    JobOutcome {
        job,
        stream,
        result,
    }
}

/// The owner's blocked sites and the relay's deny list, at the first URL and
/// after redirects.
fn names_allow(host: &impl JobHost, target: &Checked<Url>) -> Result<(), Failure> {
    match host.refuses_host(target.url.host_str().unwrap_or_default()) {
        Some(why) => Err((FailReason::TargetForbidden, why)),
        None => Ok(()),
    }
}

/// Waits for the redirect guard's word that every response for `url` since
/// `since` came from a public address (the address the browser actually
/// connected to, which no extension API shows before the request in
/// Chromium). Without hooks (a page that is not the background), refuses.
async fn address_verdict(host: &impl JobHost, url: &str, since: f64) -> Result<(), Failure> {
    let ok = match host.verdict_hook() {
        Some(f) => match f.call2(&JsValue::NULL, &JsValue::from_str(url), &since.into()) {
            Ok(p) => JsFuture::from(js_sys::Promise::from(p))
                .await
                .is_ok_and(|v| v.is_truthy()),
            Err(_) => false,
        },
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err((
            FailReason::TargetForbidden,
            "the target answered from an address that is not public (or its address could not be confirmed); the answer was discarded".into(),
        ))
    }
}

async fn execute(
    host: &impl JobHost,
    head: RequestHead,
    credit: &CreditGate,
    abort: &web_sys::AbortController,
    body: Option<futures::channel::oneshot::Receiver<Option<Vec<u8>>>>,
) -> Result<(u64, u64), Failure> {
    let stream = head.stream;
    let target = host
        .policy()
        .check_in::<Url>(&head.url)
        .map_err(|e| (FailReason::TargetForbidden, e.to_string()))?;
    names_allow(host, &target)?;
    host.count_site(target.url.host_str().unwrap_or_default())
        .map_err(|e| (FailReason::SiteCapped, e))?;
    let mut up = request_head_bytes(&head);
    let body = match body {
        None => None,
        Some(rx) => match rx.await {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                return Err((
                    FailReason::TooLarge,
                    "the request body is larger than the node accepts".into(),
                ))
            }
            Err(_) => return Err((FailReason::Internal, "the job was cancelled".into())),
        },
    };

    let init = RequestInit::new();
    init.set_method(&head.method);
    // No cookies, HTTP auth or client certificates of the owner's browser go
    // out, and cookies in the answer are not stored.
    init.set_credentials(RequestCredentials::Omit);
    init.set_cache(RequestCache::NoStore);
    init.set_redirect(RequestRedirect::Follow);
    init.set_referrer_policy(web_sys::ReferrerPolicy::NoReferrer);
    init.set_signal(Some(&abort.signal()));
    let headers = web_sys::Headers::new().map_err(|e| (FailReason::Internal, js::describe(&e)))?;
    for (name, value) in &head.headers {
        // The browser silently drops headers that scripts may not set
        // (Cookie, Host, …); anything else it refuses is a bad request.
        let value = String::from_utf8_lossy(value);
        headers.append(name, &value).map_err(|e| {
            (
                FailReason::BadRequest,
                format!("header {name}: {}", js::describe(&e)),
            )
        })?;
    }
    init.set_headers(&headers);
    if let Some(b) = &body {
        up += b.len() as u64;
        init.set_body(&js_sys::Uint8Array::from(b.as_slice()));
    }
    let sent_at = js::now_ms();
    let response: Response = JsFuture::from(js::fetch_with_init(target.url.href(), &init))
        .await
        .map_err(|e| {
            (
                FailReason::TargetUnreachable,
                format!("the browser could not fetch the target, or blocked a redirect to a forbidden address: {}", js::describe(&e)),
            )
        })?
        .unchecked_into();
    // The redirect guard blocks forbidden hops before they are requested; this
    // check makes sure nothing from such a hop is ever passed on.
    let final_url = response.url();
    if !final_url.is_empty() {
        let hop = host.policy().check_in::<Url>(&final_url).map_err(|e| {
            (
                FailReason::TargetForbidden,
                format!("the target redirected to a forbidden target: {e}"),
            )
        })?;
        names_allow(host, &hop)?;
    }
    // Nothing of the answer leaves the node before the guard has seen where
    // it came from.
    let answered = if final_url.is_empty() {
        target.url.href()
    } else {
        &final_url
    };
    address_verdict(host, answered, sent_at).await?;

    let mut out: Vec<Header> = Vec::new();
    let mut decoded = false;
    if let Ok(Some(iter)) = js_sys::try_iter(&response.headers()) {
        for entry in iter.flatten() {
            let pair: js_sys::Array = entry.unchecked_into();
            let name = pair
                .get(0)
                .as_string()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let value = pair.get(1).as_string().unwrap_or_default();
            if name == "content-encoding" {
                decoded = true;
            }
            if !is_hop_by_hop(&name) && !name.is_empty() {
                out.push((name, Bytes::from(value.into_bytes())));
            }
        }
    }
    if decoded {
        // fetch always decodes gzip/br bodies: pass the body on as decoded,
        // and drop the headers that described the encoded one.
        out.retain(|(n, _)| n != "content-encoding" && n != "content-length");
    }
    let header_total: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
    if out.len() > MAX_HEADER_COUNT || header_total > MAX_HEADER_BYTES {
        return Err((
            FailReason::TooLarge,
            "the target sent too many or too large headers".into(),
        ));
    }
    let head = ResponseHead {
        stream,
        status: response.status(),
        headers: out,
    };
    // Head plus body, against the one limit both nodes apply.
    let mut down = ResponseSize::new(&head);
    host.send(&NodeMessage::ResponseHead(head));

    if let Some(body) = response.body() {
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        loop {
            let chunk = JsFuture::from(reader.read()).await.map_err(|e| {
                (
                    FailReason::TargetUnreachable,
                    format!("the target's response broke off: {}", js::describe(&e)),
                )
            })?;
            let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
                .map(|v| v.is_truthy())
                .unwrap_or(true);
            if done {
                break;
            }
            let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
                .unwrap_or(JsValue::UNDEFINED);
            let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>() else {
                continue;
            };
            let mut data = Bytes::from(bytes.to_vec());
            down.add(data.len())
                .map_err(|e| (FailReason::TooLarge, e.to_string()))?;
            while !data.is_empty() {
                let Some(n) = credit.take(data.len().min(MAX_CHUNK_BYTES)).await else {
                    return Err((FailReason::Internal, "the job was cancelled".into()));
                };
                let piece = data.split_to(n);
                // Reading the answer no faster than the owner's limit also
                // slows the target: the browser's buffers fill and TCP waits.
                let wait = host.pace(piece.len());
                if wait > 0 {
                    js::sleep(wait).await;
                }
                while host.queued_bytes() > WS_HIGH_WATER {
                    js::sleep(5).await;
                }
                if !host.send(&NodeMessage::ResponseBody {
                    stream,
                    data: piece,
                }) {
                    return Err((
                        FailReason::Internal,
                        "the connection to the relay closed".into(),
                    ));
                }
            }
        }
    }
    host.send(&NodeMessage::ResponseEnd { stream });
    Ok((up, down.bytes()))
}
