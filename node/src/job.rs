//! Running one job: check the target, send the request (following redirects
//! only to targets that pass the policy), and stream the response back under
//! the relay's credit.

use crate::guard::HopGuard;
use crate::http::{describe, forbidden_cause, HttpClient, ReqBody};
use crate::outbox::Outbox;
use crate::tunnel::TunnelError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{
    CREDIT_BATCH, MAX_CHUNK_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_JOB_TIMEOUT,
    MAX_REDIRECTS, MAX_WHOLE_RESPONSE_BYTES,
};
use spareband_protocol::metering::request_head_bytes;
use spareband_protocol::metering::ResponseSize;
use spareband_protocol::policy::TargetHost;
use spareband_protocol::rules::RuleError;
use spareband_protocol::{
    is_hop_by_hop, BodyKind, FailReason, Header, NodeMessage, RequestHead, ResponseHead, StreamId,
    Target, TargetPolicy,
};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a job failed at this node. The relay is told [`JobError::reason`]
/// and the words, and passes them on to the customer.
#[derive(Debug, thiserror::Error)]
enum JobError {
    /// The target, or a redirect hop, is not one this node may fetch.
    #[error("{0}")]
    Forbidden(String),
    /// A hop's site is over the relay's per-minute cap at this node.
    #[error("{0}")]
    SiteCapped(String),
    /// The customer's request cannot be sent as it is.
    #[error("{0}")]
    BadRequest(String),
    /// The target could not be reached, or its answer broke off.
    #[error("{0}")]
    Unreachable(String),
    /// The target's answer is larger than a node carries.
    #[error("{0}")]
    TooLarge(String),
    /// The relay cancelled the job (no receipt will come).
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    /// The reason the relay is told.
    fn reason(&self) -> FailReason {
        match self {
            JobError::Forbidden(_) => FailReason::TargetForbidden,
            JobError::SiteCapped(_) => FailReason::SiteCapped,
            JobError::BadRequest(_) => FailReason::BadRequest,
            JobError::Unreachable(_) => FailReason::TargetUnreachable,
            JobError::TooLarge(_) => FailReason::TooLarge,
            JobError::Cancelled => FailReason::Internal,
        }
    }

    /// Whether the same job may work on another attempt: a site cap is this
    /// node's own count, and a target may be reachable again; the rest fail
    /// the same way every time.
    fn retryable(&self) -> bool {
        matches!(self, JobError::SiteCapped(_) | JobError::Unreachable(_))
    }
}

impl From<RuleError> for JobError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::SiteCapped(..) => JobError::SiteCapped(e.to_string()),
            _ => JobError::Forbidden(e.to_string()),
        }
    }
}

/// A job's place among the jobs the node runs at once. It is given back
/// just before the job's last frame (`ResponseEnd` or `Fail`): the relay
/// frees its own count of the node's slots when that frame arrives, so the
/// node's count is never the higher one, and a job the relay sends the
/// moment a slot frees is never refused as busy. Dropping it (a cancelled
/// or aborted job) gives it back too.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place if fewer than `max` are taken.
    pub fn take(running: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(running.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a job needs from its connection.
pub struct JobCtx {
    /// The job's place among the node's running jobs; given back before the
    /// job's last frame.
    pub slot: Option<Slot>,
    /// The job's stream.
    pub stream: StreamId,
    /// Frames to the relay.
    pub out: Outbox,
    /// Credit for response-body bytes.
    pub credit: Arc<CreditGate>,
    /// Request-body chunks from the relay, when the job has a body.
    pub body: Option<mpsc::UnboundedReceiver<Bytes>>,
    /// The HTTP client.
    pub client: HttpClient,
    /// Its TCP connector, for tunnels.
    pub connector: crate::http::Connector,
    /// The target policy.
    pub policy: Arc<TargetPolicy>,
    /// Domains the owner never shares with.
    pub blocked: Arc<Vec<String>>,
    /// The relay's rules and the owner's addresses, for every hop.
    pub guard: Arc<HopGuard>,
    /// The relay takes a small answer as one `Response` frame.
    pub whole_responses: bool,
    /// The owner's speed limit (and caps).
    pub owner: Arc<crate::owner::Owner>,
}

/// What every hop passes besides the target policy, at the first URL and
/// every redirect: the owner's block list, the relay's deny list and site
/// cap, and the owner's own addresses for an IP literal (names are checked
/// on every address they resolve to, in the resolver).
fn check_hop(ctx: &JobCtx, target: &Target) -> Result<(), JobError> {
    let Some(host) = target.url.host_str() else {
        return Ok(());
    };
    if let Some(d) = spareband_protocol::policy::covering_domain(&ctx.blocked, host) {
        return Err(JobError::Forbidden(format!(
            "this node's owner does not share with {d}"
        )));
    }
    ctx.guard.check_host(host)?;
    match target.host {
        TargetHost::Ip(ip) if !target.allow_listed => Ok(ctx.guard.check_address(ip)?),
        _ => Ok(()),
    }
}

/// Runs a job to its end and reports the outcome to the relay. Returns the
/// node's own metered count of a delivered job, `(up without the request
/// body, down)`; the connection adds the body bytes it received.
pub async fn run(mut ctx: JobCtx, head: RequestHead) -> Option<(u64, u64)> {
    let deadline = Duration::from_millis(head.deadline_ms as u64).min(MAX_JOB_TIMEOUT);
    let stream = ctx.stream;
    let out = ctx.out.clone();
    match tokio::time::timeout(deadline, execute(&mut ctx, head)).await {
        Ok(Ok(counts)) => return Some(counts),
        Ok(Err(e)) => {
            tracing::debug!(stream, reason = ?e.reason(), retryable = e.retryable(), error = %e, "job failed");
            drop(ctx.slot.take());
            out.send(&NodeMessage::Fail {
                stream,
                reason: e.reason(),
                message: e.to_string(),
            });
        }
        Err(_) => {
            drop(ctx.slot.take());
            out.send(&NodeMessage::Fail {
                stream,
                reason: FailReason::Timeout,
                message: format!("the job's deadline of {deadline:?} passed at the node"),
            });
        }
    }
    None
}

/// Turns the relay's body chunks into a request body, returning credit as
/// chunks go to the target.
fn channel_body(
    rx: mpsc::UnboundedReceiver<Bytes>,
    out: Outbox,
    stream: StreamId,
    owner: Arc<crate::owner::Owner>,
) -> ReqBody {
    let s = futures_util::stream::unfold((rx, out, 0u32), move |(mut rx, out, mut unreturned)| {
        let owner = owner.clone();
        async move {
            let chunk = rx.recv().await?;
            // Paced before the credit goes back: under a speed limit the
            // relay can send no faster than the owner allows.
            owner.pace(chunk.len()).await;
            unreturned += chunk.len() as u32;
            if unreturned >= CREDIT_BATCH {
                out.send(&NodeMessage::Credit {
                    stream,
                    bytes: std::mem::take(&mut unreturned),
                });
            }
            Some((
                Ok::<_, Infallible>(Frame::data(chunk)),
                (rx, out, unreturned),
            ))
        }
    });
    StreamBody::new(s).boxed_unsync()
}

fn empty_body() -> ReqBody {
    http_body_util::Empty::new().boxed_unsync()
}

fn build_request(
    method: &Method,
    url: &url::Url,
    headers: &[Header],
    body: ReqBody,
) -> Result<http::Request<ReqBody>, JobError> {
    let bad = JobError::BadRequest;
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|e| bad(format!("the URL cannot be sent: {e}")))?;
    let mut req = http::Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("invalid header name '{name}'")))?;
        let v = HeaderValue::from_bytes(value)
            .map_err(|_| bad(format!("invalid value for header '{name}'")))?;
        req = req.header(n, v);
    }
    req.body(body).map_err(|e| bad(e.to_string()))
}

impl From<TunnelError> for JobError {
    fn from(e: TunnelError) -> Self {
        match e {
            TunnelError::Forbidden(m) => JobError::Forbidden(m),
            TunnelError::Unreachable(m) => JobError::Unreachable(m),
            TunnelError::TooLarge(m) => JobError::TooLarge(m),
            TunnelError::Cancelled => JobError::Cancelled,
        }
    }
}

/// A `CONNECT` job: a tunnel to the target's host and port
/// ([`crate::tunnel`]).
async fn tunnel(
    ctx: &mut JobCtx,
    target: &Target,
    head: RequestHead,
) -> Result<(u64, u64), JobError> {
    let up_head = request_head_bytes(&head);
    let host = target
        .url
        .host_str()
        .ok_or_else(|| JobError::BadRequest("a tunnel needs a host".into()))?;
    let port = target
        .url
        .port_or_known_default()
        .ok_or_else(|| JobError::BadRequest("a tunnel needs a port".into()))?;
    let tcp = crate::tunnel::connect(&ctx.connector, host, port).await?;
    let up = if head.body.has_body() {
        ctx.body.take()
    } else {
        None
    };
    let down = crate::tunnel::pipe(tcp, up, &ctx.out, &ctx.credit, ctx.stream, &ctx.owner).await?;
    drop(ctx.slot.take());
    ctx.out
        .send(&NodeMessage::ResponseEnd { stream: ctx.stream });
    Ok((up_head, down))
}

fn classify(e: hyper_util::client::legacy::Error) -> JobError {
    match forbidden_cause(&e) {
        Some(why) => JobError::Forbidden(why),
        None => JobError::Unreachable(format!("the target could not be reached: {}", describe(&e))),
    }
}

async fn execute(ctx: &mut JobCtx, head: RequestHead) -> Result<(u64, u64), JobError> {
    let target = ctx
        .policy
        .check(&head.url)
        .map_err(|e| JobError::Forbidden(e.to_string()))?;
    check_hop(ctx, &target)?;
    let mut method = Method::from_bytes(head.method.as_bytes())
        .map_err(|_| JobError::BadRequest(format!("invalid method {}", head.method)))?;
    if method == Method::CONNECT {
        return tunnel(ctx, &target, head).await;
    }
    let mut url = target.url;
    // Metered exactly as the relay meters (spareband_protocol::metering):
    // the request body is counted by the connection as it arrives from the
    // relay (a target may answer before reading all of it).
    let up_head = request_head_bytes(&head);
    let mut headers = head.headers;
    if let BodyKind::Sized(n) = head.body {
        // A known length goes out as Content-Length (many servers refuse
        // chunked uploads); hyper then checks the body matches it.
        headers.push(("content-length".into(), Bytes::from(n.to_string())));
    }
    let mut body_sent = head.body.has_body();
    let mut body = match ctx.body.take() {
        Some(rx) if body_sent => channel_body(rx, ctx.out.clone(), ctx.stream, ctx.owner.clone()),
        _ => empty_body(),
    };
    let mut hops = 0u8;
    let response = loop {
        let req = build_request(
            &method,
            &url,
            &headers,
            std::mem::replace(&mut body, empty_body()),
        )?;
        let resp = ctx.client.request(req).await.map_err(classify)?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let Some(location) = location.filter(|_| status.is_redirection() && hops < MAX_REDIRECTS)
        else {
            break resp;
        };
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            break resp;
        }
        let next = url.join(&location).map_err(|e| {
            JobError::Unreachable(format!("the target redirected to an invalid location: {e}"))
        })?;
        // 303 always, and 301/302 after a POST, continue as GET without a
        // body (what browsers do); 307/308 keep the method and body.
        let to_get = status == StatusCode::SEE_OTHER && method != Method::HEAD
            || matches!(status.as_u16(), 301 | 302) && method == Method::POST;
        if body_sent && !to_get {
            // The body streamed through once and cannot be replayed: hand the
            // redirect itself back to the customer.
            break resp;
        }
        let next = ctx.policy.check_url(next).map_err(|e| {
            JobError::Forbidden(format!("the target redirected to a forbidden target: {e}"))
        })?;
        check_hop(ctx, &next)?;
        if to_get {
            method = Method::GET;
            body_sent = false;
            headers.retain(|(n, _)| !n.starts_with("content-"));
        }
        if next.url.origin() != url.origin() {
            // Credentials the customer meant for one origin never follow a
            // redirect to another.
            headers.retain(|(n, _)| !matches!(n.as_str(), "authorization" | "cookie"));
        }
        url = next.url;
        hops += 1;
    };

    let (parts, mut body) = response.into_parts();
    let mut out_headers: Vec<Header> = Vec::with_capacity(parts.headers.len());
    let mut size = 0usize;
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name.as_str()) {
            continue;
        }
        size += name.as_str().len() + value.len();
        out_headers.push((
            name.as_str().to_string(),
            Bytes::copy_from_slice(value.as_bytes()),
        ));
    }
    if out_headers.len() > MAX_HEADER_COUNT || size > MAX_HEADER_BYTES {
        return Err(JobError::TooLarge(format!(
            "the target sent {} headers ({size} bytes); the limit is {MAX_HEADER_COUNT} headers and {MAX_HEADER_BYTES} bytes",
            out_headers.len()
        )));
    }
    let stream = ctx.stream;
    let response_head = ResponseHead {
        stream,
        status: parts.status.as_u16(),
        headers: out_headers,
    };
    // Head plus body, against the one limit both nodes apply.
    let mut down = ResponseSize::new(&response_head);
    let declared = http_body::Body::size_hint(&body).exact();
    let small = declared.is_some_and(|n| n <= MAX_WHOLE_RESPONSE_BYTES as u64);
    if ctx.whole_responses && small {
        // A small answer of known length goes whole, in one frame: it fits
        // the stream's first window, so it needs no credit.
        let mut whole = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                JobError::Unreachable(format!("the target's response broke off: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                down.add(data.len())
                    .map_err(|e| JobError::TooLarge(e.to_string()))?;
                whole.extend_from_slice(&data);
            }
        }
        // hyper holds a body to its Content-Length, so this is a guard
        // against a future client, not a case seen.
        if whole.len() > MAX_WHOLE_RESPONSE_BYTES {
            return Err(JobError::TooLarge(format!(
                "the target sent {} bytes where it declared {}",
                whole.len(),
                declared.unwrap_or_default()
            )));
        }
        ctx.owner.pace(whole.len()).await;
        drop(ctx.slot.take());
        ctx.out.send(&NodeMessage::Response {
            head: response_head,
            body: whole.freeze(),
        });
        return Ok((up_head, down.bytes()));
    }
    ctx.out.send(&NodeMessage::ResponseHead(response_head));
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| JobError::Unreachable(format!("the target's response broke off: {e}")))?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        down.add(data.len())
            .map_err(|e| JobError::TooLarge(e.to_string()))?;
        while !data.is_empty() {
            let Some(n) = ctx.credit.take(data.len().min(MAX_CHUNK_BYTES)).await else {
                // Cancelled by the relay: no receipt will come.
                return Err(JobError::Cancelled);
            };
            let piece = data.split_to(n);
            ctx.owner.pace(piece.len()).await;
            ctx.out.send(&NodeMessage::ResponseBody {
                stream,
                data: piece,
            });
        }
    }
    drop(ctx.slot.take());
    ctx.out.send(&NodeMessage::ResponseEnd { stream });
    Ok((up_head, down.bytes()))
}
