//! Running one customer job: choose a node (sticky session, country, least
//! loaded, waiting for a free slot until the deadline), send the request and
//! its body under the node's credit, wait for the response head, and retry a
//! GET or HEAD on another node when its node fails before answering.

use crate::config::MAX_RETRIES;
use crate::keylimits::Refusal;
use crate::nodes::{OpenStream, Pick, PickResult, StreamEvent};
use crate::resolve::Screened;
use crate::AppState;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use rand::RngCore;
use spareband_ledger::clock::now_ms;
use spareband_ledger::CustomerId;
use spareband_ledger::{JobOutcome, UsageRecord};
use spareband_protocol::limits::{
    MAX_CHUNK_BYTES, MAX_REQUEST_BODY_BYTES, MAX_RESPONSE_BODY_BYTES,
};
use spareband_protocol::metering::{request_head_bytes, response_head_bytes};
use spareband_protocol::rules::site_of;
use spareband_protocol::{
    BodyKind, CancelReason, FailReason, Header, JobId, NodeId, Receipt, RelayMessage, RequestHead,
    ResponseHead, Target,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a job did not produce a response. Each maps to one API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// No node can take the job.
    #[error("{0}")]
    NoNode(String),
    /// The node failed or went away.
    #[error("{0}")]
    NodeFailed(String),
    /// The deadline passed.
    #[error("the job did not finish within {0:?}")]
    Timeout(Duration),
    /// The response is larger than allowed.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// The request body is larger than allowed.
    #[error("the request body is larger than {MAX_REQUEST_BODY_BYTES} bytes")]
    RequestTooLarge,
    /// The target (or a redirect hop) is forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// The node could not send the request as given.
    #[error("{0}")]
    BadRequest(String),
    /// The key sends too fast or has too many jobs in flight; retry after
    /// the given time.
    #[error("{1}")]
    RateLimited(Duration, String),
    /// The key's monthly quota is used up.
    #[error("{0}")]
    QuotaExceeded(String),
}

impl JobError {
    /// How a job attempt that ended in this error is recorded.
    fn outcome(&self) -> JobOutcome {
        match self {
            JobError::NodeFailed(_) => JobOutcome::NodeFailed,
            JobError::Timeout(_) => JobOutcome::Timeout,
            _ => JobOutcome::Refused,
        }
    }
}

/// One attempt of a job on one node: what its usage record is keyed by.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    job: JobId,
    node: NodeId,
    customer: CustomerId,
    started_at: i64,
    /// The same moment, for the latency histograms.
    dispatched: Instant,
    /// Whether the node earned when the job was dispatched.
    earning: bool,
}

/// A fresh job id: the time in milliseconds (48 bits, big-endian) and 80
/// random bits. Ids that grow with time are appended at the end of the
/// ledger's primary-key index instead of at random places in it, which kept
/// the ledger writer's rate from falling as the table grew
/// (docs/BENCHMARKS.md); 80 random bits keep them unguessable and unique.
pub fn new_job_id(now_ms: i64) -> JobId {
    let mut job = JobId::default();
    job.0[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    rand::thread_rng().fill_bytes(&mut job.0[6..]);
    job
}

/// Ends an attempt: counters, one record in the ledger, and for delivered
/// work a receipt for the node (signed in batches, see
/// [`crate::nodes::NodeHandle::add_receipt`]).
fn finish(state: &AppState, a: &Attempt, outcome: JobOutcome, up: u64, down: u64) {
    state.metrics.job(outcome, up, down);
    state.metrics.job_duration.observe(a.dispatched.elapsed());
    let finished_at = now_ms();
    if outcome == JobOutcome::Ok {
        if let Some(node) = state.registry.get(&a.node) {
            let epoch_ms = state.config.epoch().as_millis().max(1) as u64;
            let receipt = Receipt {
                job: a.job,
                bytes_up: up,
                bytes_down: down,
                epoch: finished_at as u64 / epoch_ms,
                time_ms: finished_at as u64,
            };
            node.add_receipt(receipt, &state.relay_key.0);
        }
    }
    state.ledger.record(UsageRecord {
        job: a.job,
        node: a.node,
        customer: a.customer,
        bytes_up: up,
        bytes_down: down,
        outcome,
        started_at: a.started_at,
        finished_at,
        earning: a.earning,
    });
}

/// The request body of a job.
pub enum JobBody {
    /// No body.
    Empty,
    /// A body already in memory (JSON mode).
    Buffered(Bytes),
    /// A body streamed from the customer (raw mode); read once, so such a
    /// job is never retried.
    Streaming {
        /// The body.
        body: axum::body::Body,
        /// Its declared length, when the customer sent `Content-Length`.
        length: Option<u64>,
    },
}

/// A job to run.
pub struct JobRequest {
    /// Who asked.
    pub customer: CustomerId,
    /// HTTP method.
    pub method: String,
    /// Checked target.
    pub target: Target,
    /// Headers to send.
    pub headers: Vec<Header>,
    /// Body.
    pub body: JobBody,
    /// Only nodes in this country.
    pub country: Option<String>,
    /// Sticky session name.
    pub session: Option<String>,
    /// Whole-job deadline.
    pub timeout: Duration,
    /// The key's admission, when the caller took it before building the job
    /// (otherwise [`run`] admits).
    pub permit: Option<crate::keylimits::Permit>,
}

/// A job whose response head has arrived; the body streams from `body`.
pub struct JobResponse {
    /// The job's id.
    pub job: JobId,
    /// The node serving it.
    pub node: NodeId,
    /// Status and headers.
    pub head: ResponseHead,
    /// The response body.
    pub body: ResponseBody,
}

/// The relay's own checks before any node is involved: the operator's deny
/// list, then the target name's DNS answers.
async fn screen(state: &AppState, target: &Target) -> Result<Screened, JobError> {
    if let Some(host) = target.url.host_str() {
        if let Some(entry) = state.deny.denies(host) {
            return Err(JobError::Forbidden(format!(
                "{host} is on this relay's deny list ({entry})"
            )));
        }
    }
    state
        .resolver
        .check(&state.policy, target)
        .await
        .map_err(JobError::Forbidden)
}

/// Admits a job of `customer` against its key's rate, concurrency and
/// quota: the permit holds a concurrency slot until it is dropped. Callers
/// that read a large request body admit first (see `api/fetch.rs`).
pub async fn admit(
    state: &AppState,
    customer: CustomerId,
) -> Result<crate::keylimits::Permit, JobError> {
    state.keys.admit(&state.db, customer).await.map_err(|why| {
        state.metrics.job(JobOutcome::Refused, 0, 0);
        match why {
            Refusal::Rate(wait) => JobError::RateLimited(
                wait,
                format!(
                    "this key sends more than {} requests a second; retry after the Retry-After time",
                    state.config.key_rate_per_sec
                ),
            ),
            Refusal::Concurrency(n) => JobError::RateLimited(
                Duration::from_secs(1),
                format!("this key already has {n} requests in flight; wait for some to finish"),
            ),
            Refusal::Quota(used, quota) => JobError::QuotaExceeded(format!(
                "this key has used {used} of its {quota} bytes this month (UTC); the quota resets on the 1st"
            )),
        }
    })
}

/// Runs a job up to its response head.
pub async fn run(state: &Arc<AppState>, mut req: JobRequest) -> Result<JobResponse, JobError> {
    let arrived = Instant::now();
    let deadline = arrived + req.timeout;
    let mut permit = match req.permit.take() {
        Some(p) => Some(p),
        None => Some(admit(state, req.customer).await?),
    };
    let screened = match screen(state, &req.target).await {
        Ok(s) => s,
        Err(e) => {
            state.metrics.job(JobOutcome::Refused, 0, 0);
            return Err(e);
        }
    };
    // Browser nodes cannot check the address they connect to before they
    // connect, so they take only https on 443 (where the certificate check
    // stops split-horizon and rebinding names) and only names the relay
    // resolved to public addresses (fail closed).
    let browser_ok = req.target.fits_browser() && screened != Screened::Unresolved;
    let retriable = matches!(req.method.as_str(), "GET" | "HEAD")
        && !matches!(req.body, JobBody::Streaming { .. });
    let mut tried: Vec<NodeId> = Vec::new();
    let mut last_error: Option<JobError> = None;
    for attempt in 0..=MAX_RETRIES {
        let wanted = Wanted {
            customer: req.customer,
            country: req.country.as_deref(),
            session: req.session.as_deref(),
            site: req.target.url.host_str().map(site_of),
            host: req.target.url.host_str(),
            browser_ok,
            addrs: screened.addrs(),
        };
        let node = match choose_node(state, &wanted, &tried, deadline).await {
            Ok(n) => n,
            Err(e) => {
                if last_error.is_none() {
                    // Refused before any node was involved: no usage record.
                    state.metrics.job(JobOutcome::Refused, 0, 0);
                }
                return Err(last_error.unwrap_or(e));
            }
        };
        if attempt > 0 {
            state.metrics.retry();
        }
        tried.push(node.id);
        let mut stream = node.open_stream();
        let job = new_job_id(now_ms());
        let attempt = Attempt {
            job,
            node: node.id,
            customer: req.customer,
            started_at: now_ms(),
            dispatched: Instant::now(),
            earning: node.earning.load(std::sync::atomic::Ordering::Acquire),
        };
        let body = std::mem::replace(&mut req.body, JobBody::Empty);
        let kind = match &body {
            JobBody::Empty => BodyKind::Empty,
            JobBody::Buffered(b) if b.is_empty() => BodyKind::Empty,
            JobBody::Buffered(b) => BodyKind::Sized(b.len() as u64),
            JobBody::Streaming {
                length: Some(n), ..
            } => BodyKind::Sized(*n),
            JobBody::Streaming { .. } => BodyKind::Streamed,
        };
        let has_body = kind.has_body();
        let head = RequestHead {
            stream: stream.id(),
            job,
            method: req.method.clone(),
            url: req.target.url.to_string(),
            headers: req.headers.clone(),
            body: kind,
            deadline_ms: deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(u32::MAX as u128) as u32,
        };
        stream
            .up
            .store(request_head_bytes(&head), Ordering::Relaxed);
        stream.send(&RelayMessage::Request(head));
        if has_body {
            // Keep the bytes for a retry when they are in memory.
            if let JobBody::Buffered(b) = &body {
                req.body = JobBody::Buffered(b.clone());
            }
            start_pump(&mut stream, body);
        } else if let JobBody::Buffered(b) = body {
            req.body = JobBody::Buffered(b);
        }

        let event = tokio::time::timeout_at(deadline, stream.events.recv()).await;
        let failure = match event {
            Err(_) => {
                stream.cancel_reason = CancelReason::DeadlinePassed;
                Err(JobError::Timeout(req.timeout))
            }
            Ok(Some(StreamEvent::Head(head))) => {
                state
                    .metrics
                    .first_byte
                    .observe(attempt.dispatched.elapsed());
                state.metrics.request_head.observe(arrived.elapsed());
                if let Some(s) = &req.session {
                    state.sessions.pin(req.customer, s, node.id);
                }
                stream.down = response_head_bytes(&head);
                // HEAD, 204 and 304 answers carry a Content-Length but no body.
                let content_length = if req.method == "HEAD" || matches!(head.status, 204 | 304) {
                    None
                } else {
                    content_length(&head)
                };
                return Ok(JobResponse {
                    job,
                    node: node.id,
                    head,
                    body: ResponseBody {
                        stream,
                        attempt,
                        state: state.clone(),
                        sleep: Box::pin(tokio::time::sleep_until(deadline)),
                        timeout: req.timeout,
                        received: 0,
                        limit: MAX_RESPONSE_BODY_BYTES,
                        content_length,
                        done: false,
                        _permit: permit.take(),
                    },
                });
            }
            Ok(Some(StreamEvent::Failed(reason, message))) => {
                stream.set_finished();
                match reason {
                    FailReason::TargetForbidden => Err(JobError::Forbidden(message)),
                    FailReason::Timeout => Err(JobError::Timeout(req.timeout)),
                    FailReason::TooLarge => Err(JobError::ResponseTooLarge(message)),
                    FailReason::BadRequest => Err(JobError::BadRequest(message)),
                    // That node's own count for a redirect hop's site: another
                    // node may still have room.
                    FailReason::SiteCapped => Ok(JobError::RateLimited(
                        state.registry.caps.retry_after(),
                        format!("the node's per-site cap stopped a redirect: {message}"),
                    )),
                    FailReason::TargetUnreachable
                    | FailReason::Busy
                    | FailReason::Paused
                    | FailReason::Internal => Ok(JobError::NodeFailed(format!(
                        "the node could not complete the request: {message}"
                    ))),
                }
            }
            Ok(Some(StreamEvent::LocalError(e))) => Err(e),
            Ok(Some(StreamEvent::NodeGone)) | Ok(None) => Ok(JobError::NodeFailed(
                "the node disconnected before answering".into(),
            )),
            Ok(Some(StreamEvent::Body(_) | StreamEvent::End)) => Ok(JobError::NodeFailed(
                "the node sent a body before a head".into(),
            )),
        };
        match failure {
            // Final: the request itself is the problem, another node won't help.
            Err(e) => {
                finish(
                    state,
                    &attempt,
                    e.outcome(),
                    stream.up.load(Ordering::Relaxed),
                    0,
                );
                return Err(e);
            }
            Ok(e) => {
                let up = stream.up.load(Ordering::Relaxed);
                finish(state, &attempt, JobOutcome::NodeFailed, up, 0);
                if !retriable {
                    return Err(e);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| JobError::NodeFailed("no node answered".into())))
}

fn content_length(head: &ResponseHead) -> Option<u64> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
}

/// What a job asks of its node.
struct Wanted<'a> {
    customer: CustomerId,
    country: Option<&'a str>,
    session: Option<&'a str>,
    site: Option<String>,
    host: Option<&'a str>,
    /// Whether browser nodes may take the job.
    browser_ok: bool,
    /// The target's addresses as the relay knows them: no node whose own
    /// network holds one of them may take the job.
    addrs: &'a [std::net::IpAddr],
}

/// Picks a node for the job, waiting for a free slot while eligible nodes
/// exist but are all busy.
async fn choose_node(
    state: &AppState,
    req: &Wanted<'_>,
    tried: &[NodeId],
    deadline: Instant,
) -> Result<Arc<crate::nodes::NodeHandle>, JobError> {
    // A live pin on a connected, accepting node that has not failed this job
    // is the only candidate; otherwise the session is re-pinned.
    let pinned = req
        .session
        .and_then(|s| state.sessions.get(req.customer, s))
        .filter(|id| !tried.contains(id))
        .filter(|id| state.registry.get(id).is_some_and(|n| n.accepting()));
    let pick = Pick {
        site: req.site.as_deref(),
        host: req.host,
        country: req.country,
        exclude: tried,
        only: pinned,
        browser_ok: req.browser_ok,
        target_addrs: req.addrs,
    };
    loop {
        let changed = state.registry.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match state.registry.pick(&pick) {
            PickResult::Reserved(n) => return Ok(n),
            PickResult::NoCandidate => {
                let mut why = match req.country {
                    Some(c) => format!("no node is available in country {c}"),
                    None => "no node is available right now".into(),
                };
                if !req.browser_ok {
                    why.push_str(
                        " that can take this target: browser nodes fetch only https on port 443 \
                         from names the relay resolves, so it needs a native node",
                    );
                }
                return Err(JobError::NoNode(why));
            }
            PickResult::SiteCapped => {
                let site = req.site.as_deref().unwrap_or("this site");
                return Err(JobError::RateLimited(
                    state.registry.caps.retry_after(),
                    format!(
                        "every eligible node has sent its {} requests this minute to {site}; \
                         retry after the Retry-After time",
                        state.registry.caps.per_minute()
                    ),
                ));
            }
            PickResult::Busy => {}
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(JobError::NoNode(
                "every eligible node stayed busy until the deadline".into(),
            ));
        }
    }
}

/// Streams the request body to the node under its credit. Errors reach the
/// job through its event channel.
fn start_pump(stream: &mut OpenStream, body: JobBody) {
    let node = stream.node().clone();
    let id = stream.id();
    let credit = stream.credit.clone();
    let events = stream.events_tx.clone();
    let up = stream.up.clone();
    stream.pump = Some(tokio::spawn(async move {
        let mut total: u64 = 0;
        let send = |mut data: Bytes| {
            let credit = credit.clone();
            let node = node.clone();
            let up = up.clone();
            async move {
                while !data.is_empty() {
                    let Some(n) = credit.take(data.len().min(MAX_CHUNK_BYTES)).await else {
                        return false;
                    };
                    let piece = data.split_to(n);
                    let len = piece.len() as u64;
                    if !node.send(&RelayMessage::RequestBody {
                        stream: id,
                        data: piece,
                    }) {
                        return false;
                    }
                    // Counted once queued to the node, with no await in
                    // between, so an abort never leaves a piece half-counted.
                    up.fetch_add(len, Ordering::Relaxed);
                }
                true
            }
        };
        match body {
            JobBody::Empty => {}
            JobBody::Buffered(b) => {
                if !send(b).await {
                    return;
                }
            }
            JobBody::Streaming { mut body, .. } => loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        total += data.len() as u64;
                        if total > MAX_REQUEST_BODY_BYTES {
                            let _ = events.send(StreamEvent::LocalError(JobError::RequestTooLarge));
                            return;
                        }
                        if !send(data).await {
                            return;
                        }
                    }
                    Some(Err(_)) => {
                        let _ = events.send(StreamEvent::LocalError(JobError::BadRequest(
                            "the request body could not be read".into(),
                        )));
                        return;
                    }
                }
            },
        }
        node.send(&RelayMessage::RequestEnd { stream: id });
    }));
}

/// A job's response body, streamed from the node. Each chunk handed on
/// returns credit to the node; dropping it early cancels the job.
pub struct ResponseBody {
    stream: OpenStream,
    attempt: Attempt,
    state: Arc<AppState>,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    received: u64,
    limit: u64,
    content_length: Option<u64>,
    done: bool,
    /// The key's concurrency slot, held until the body is done or dropped.
    _permit: Option<crate::keylimits::Permit>,
}

impl ResponseBody {
    /// Caps the body (JSON mode holds it in memory).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Metered bytes so far: (up, down).
    pub fn bytes(&self) -> (u64, u64) {
        (self.stream.up.load(Ordering::Relaxed), self.stream.down)
    }

    fn fail(
        &mut self,
        reason: CancelReason,
        e: JobError,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        self.done = true;
        self.stream.cancel_reason = reason;
        let (up, down) = self.bytes();
        finish(&self.state, &self.attempt, e.outcome(), up, down);
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = JobError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let t = self.timeout;
            return self.fail(CancelReason::DeadlinePassed, JobError::Timeout(t));
        }
        let event = match self.stream.events.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(e) => e,
        };
        match event {
            Some(StreamEvent::Body(data)) => {
                let len = data.len();
                self.stream.consumed(len);
                self.received += len as u64;
                self.stream.down += len as u64;
                if self.received > self.limit {
                    let msg = format!("the response body is larger than {} bytes", self.limit);
                    return self.fail(CancelReason::TooLarge, JobError::ResponseTooLarge(msg));
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(StreamEvent::End) => {
                self.done = true;
                self.stream.set_finished();
                // A target may answer before reading the whole request body:
                // stop sending it, so the receipt counts exactly what went.
                if let Some(p) = self.stream.pump.take() {
                    p.abort();
                }
                if let Some(cl) = self.content_length {
                    if cl != self.received {
                        let msg = format!(
                            "the node sent {} body bytes but Content-Length said {cl}",
                            self.received
                        );
                        return self
                            .fail(CancelReason::ProtocolViolation, JobError::NodeFailed(msg));
                    }
                }
                let (up, down) = self.bytes();
                finish(&self.state, &self.attempt, JobOutcome::Ok, up, down);
                Poll::Ready(None)
            }
            Some(StreamEvent::Failed(reason, message)) => {
                self.stream.set_finished();
                let e = match reason {
                    FailReason::Timeout => JobError::Timeout(self.timeout),
                    FailReason::TooLarge => JobError::ResponseTooLarge(message),
                    _ => JobError::NodeFailed(format!("the node failed mid-response: {message}")),
                };
                self.fail(CancelReason::CustomerGone, e)
            }
            Some(StreamEvent::LocalError(e)) => self.fail(CancelReason::CustomerGone, e),
            Some(StreamEvent::NodeGone) | None => {
                self.stream.set_finished();
                self.fail(
                    CancelReason::CustomerGone,
                    JobError::NodeFailed("the node disconnected mid-response".into()),
                )
            }
            Some(StreamEvent::Head(_)) => self.fail(
                CancelReason::ProtocolViolation,
                JobError::NodeFailed("the node sent a second response head".into()),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (up, down) = self.bytes();
        // With an exact Content-Length, hyper drops the body as soon as the
        // declared bytes are out, without waiting for the node's end frame:
        // that job was delivered.
        if self.content_length == Some(self.received) {
            self.stream.set_finished();
            finish(&self.state, &self.attempt, JobOutcome::Ok, up, down);
        } else {
            finish(&self.state, &self.attempt, JobOutcome::Cancelled, up, down);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::new_job_id;

    #[test]
    fn job_ids_sort_by_time_and_differ_within_a_millisecond() {
        let a = new_job_id(1_700_000_000_000);
        let b = new_job_id(1_700_000_000_000);
        let c = new_job_id(1_700_000_000_001);
        assert_ne!(a, b, "80 random bits");
        assert_eq!(a.0[..6], b.0[..6]);
        // As stored (hex text), later ids sort after earlier ones.
        assert!(a.to_string() < c.to_string() && b.to_string() < c.to_string());
        assert!(new_job_id(0).to_string() < new_job_id(i64::from(u32::MAX)).to_string());
    }
}
