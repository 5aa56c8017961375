//! Running a job: the relay's checks, the key's admission, the choice of a
//! node, the request sent and the response head awaited, with a retry on
//! another node when the first one failed a request that may be repeated.
//!
//! - [`error`]: why a job failed, which side, and whether to retry.
//! - [`choose`]: the checks and admission before a node, and the choice.
//! - [`attempt`]: one attempt on one node, and the one place it is recorded.
//! - [`body`]: the response body streamed to the customer.

mod attempt;
mod body;
mod choose;
pub mod error;

pub use attempt::new_job_id;
pub use body::{LocalBody, ResponseBody};
pub use choose::admit;
pub use error::JobError;

use crate::config::MAX_RETRIES;

/// Most times one job is sent again after a node answered busy.
const MAX_BUSY_RESENDS: usize = 20;
/// Wait before sending a job again after a busy answer: the node frees its
/// slot within a frame's time of the relay (see `node::job::Slot`).
const BUSY_RESEND_DELAY: Duration = Duration::from_millis(5);
use crate::keylimits::Permit;
use crate::nodes::{BodySource, OpenStream, StreamEvent};
use crate::resolve::Screened;
use crate::AppState;
use attempt::Attempt;
use bytes::Bytes;
use choose::{choose_node, screen, Chosen, Wanted};
use error::NodeFailure;
use spareband_ledger::{CustomerId, JobOutcome};
use spareband_protocol::limits::MAX_RESPONSE_BODY_BYTES;
use spareband_protocol::rules::site_of;
use spareband_protocol::{
    BodyKind, CancelReason, Header, JobId, NodeId, RequestHead, ResponseHead, Target,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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

impl JobBody {
    /// What the request head says of the body, and what to pump for this
    /// attempt. A buffered body stays for a retry; a streamed one is read
    /// once, so it goes.
    fn take_for_attempt(&mut self) -> (BodyKind, Option<BodySource>) {
        match std::mem::replace(self, JobBody::Empty) {
            JobBody::Empty => (BodyKind::Empty, None),
            JobBody::Buffered(b) if b.is_empty() => {
                *self = JobBody::Buffered(b);
                (BodyKind::Empty, None)
            }
            JobBody::Buffered(b) => {
                *self = JobBody::Buffered(b.clone());
                (
                    BodyKind::Sized(b.len() as u64),
                    Some(BodySource::Buffered(b)),
                )
            }
            JobBody::Streaming { body, length } => (
                length.map_or(BodyKind::Streamed, BodyKind::Sized),
                Some(BodySource::Streaming(body)),
            ),
        }
    }
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
    /// Only nodes in this city, region and network (each when given).
    pub area: crate::geo::Area,
    /// Sticky session name.
    pub session: Option<String>,
    /// How long the session keeps its node after this job (the relay's
    /// `session_ttl_secs` when none).
    pub session_ttl: Option<Duration>,
    /// Whole-job deadline.
    pub timeout: Duration,
    /// The key's admission, when the caller took it before building the job
    /// (otherwise [`run`] admits, unless the job came from a peer).
    pub permit: Option<Permit>,
    /// Only this node (a peer relay sent a pinned session's job).
    pub only: Option<NodeId>,
    /// The job came from another relay of the cluster, which admitted it
    /// against the key's limits: it runs on a node of this relay or fails,
    /// never hops again.
    pub from_peer: bool,
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

/// Runs a job up to its response head.
pub async fn run(state: &Arc<AppState>, mut req: JobRequest) -> Result<JobResponse, JobError> {
    let arrived = Instant::now();
    let deadline = arrived + req.timeout;
    if let Some(ttl) = req.session_ttl {
        let max = state.config.max_session_ttl_secs;
        if req.session.is_none() {
            return Err(JobError::BadRequest(
                "a session lifetime needs a session to apply to".into(),
            ));
        }
        if ttl.as_secs() > max {
            return Err(JobError::BadRequest(format!(
                "the session lifetime of {} s is longer than this relay allows ({max} s)",
                ttl.as_secs()
            )));
        }
    }
    let mut permit = match req.permit.take() {
        Some(p) => Some(p),
        None if req.from_peer => {
            // The relay the customer called admitted the key; this one
            // records the job, so it still needs room for the record.
            if !state.ledger.accepting() {
                state.metrics.job(JobOutcome::Refused, 0, 0);
                return Err(JobError::LedgerFull);
            }
            None
        }
        None => Some(admit(state, req.customer).await?),
    };
    // A tunnel (`CONNECT`, from the proxy port) needs a socket: native
    // nodes only, and this relay's own (the job hop carries HTTP jobs); its
    // name is the node's to resolve.
    let tunnel = req.method == "CONNECT";
    let screened = match screen(state, &req.target, !tunnel).await {
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
    let browser_ok = req.target.fits_browser() && screened != Screened::Unresolved && !tunnel;
    // A body in memory (or none) can be sent again; a streamed one is read
    // once. Only GET and HEAD go to a second node after a failure.
    let resendable = !matches!(req.body, JobBody::Streaming { .. });
    let repeatable = matches!(req.method.as_str(), "GET" | "HEAD") && resendable;
    let mut tried: Vec<NodeId> = Vec::new();
    let mut tried_relays: Vec<String> = Vec::new();
    let mut last_error: Option<JobError> = None;
    let (mut attempt_no, mut busy) = (0usize, 0usize);
    while attempt_no <= MAX_RETRIES {
        let wanted = Wanted {
            customer: req.customer,
            country: req.country.as_deref(),
            area: &req.area,
            session: req.session.as_deref(),
            site: req.target.url.host_str().map(site_of),
            host: req.target.url.host_str(),
            browser_ok,
            addrs: screened.addrs(),
            only: req.only,
            from_peer: req.from_peer || tunnel,
        };
        let node = match choose_node(state, &wanted, &tried, &tried_relays, deadline).await {
            Ok(Chosen::Here(n)) => n,
            Ok(Chosen::Peer { relay, url, only }) => {
                if attempt_no > 0 || busy > 0 {
                    state.metrics.retry();
                }
                let relay_id = relay.clone();
                tried_relays.push(relay);
                // The key's slot goes with the answer's body.
                req.permit = permit.take();
                let hop = state
                    .cluster
                    .get()
                    .map(|c| c.hop().clone())
                    .ok_or(JobError::NodeFailed(NodeFailure::Disconnected))?;
                let e = match hop.forward(&url, &mut req, only, deadline).await {
                    Ok(res) => return Ok(res),
                    Err(e) => e,
                };
                permit = req.permit.take();
                if let (JobError::Peer(p), Some(c)) = (&e, state.cluster.get()) {
                    if !p.reached {
                        c.forget(&relay_id);
                    }
                }
                // No node there took it: any method may go elsewhere, its
                // body still in hand. A failure once a node had it: only GET
                // and HEAD, as on this relay's own nodes.
                let never_started = matches!(&e, JobError::Peer(p) if matches!(
                    p.code,
                    crate::error::ErrorCode::NoNodeAvailable | crate::error::ErrorCode::RateLimited
                ));
                if !(e.another_relay_may_help() && resendable && (repeatable || never_started)) {
                    return Err(e);
                }
                attempt_no += 1;
                last_error = Some(e);
                continue;
            }
            Err(e) => {
                if last_error.is_none() {
                    // Refused before any node was involved: no usage record.
                    state.metrics.job(JobOutcome::Refused, 0, 0);
                }
                return Err(last_error.unwrap_or(e));
            }
        };
        if attempt_no > 0 || busy > 0 {
            state.metrics.retry();
        }
        tried.push(node.id);
        let mut stream = OpenStream::open(&node);
        let attempt = Attempt::start(
            node.id,
            req.customer,
            node.earning.load(std::sync::atomic::Ordering::Acquire),
        );
        let (kind, source) = req.body.take_for_attempt();
        stream.send_request(RequestHead {
            stream: stream.id(),
            job: attempt.job,
            method: req.method.clone(),
            url: req.target.url.to_string(),
            headers: req.headers.clone(),
            body: kind,
            deadline_ms: deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(u32::MAX as u128) as u32,
        });
        if let Some(source) = source {
            stream.pump(source);
        }

        let e = match await_head(state, &mut stream, deadline, req.timeout).await {
            Ok(head) => {
                state
                    .metrics
                    .first_byte
                    .observe(attempt.dispatched.elapsed());
                state.metrics.request_head.observe(arrived.elapsed());
                if let Some(s) = &req.session {
                    state.pins.pin(req.customer, s, node.id, req.session_ttl);
                    if let Some(c) = state.cluster.get() {
                        c.share_pin(req.customer, s, node.id, req.session_ttl);
                    }
                }
                stream.head_arrived(&head);
                // HEAD, 204 and 304 answers carry a Content-Length but no body.
                let content_length = if req.method == "HEAD" || matches!(head.status, 204 | 304) {
                    None
                } else {
                    content_length(&head)
                };
                return Ok(JobResponse {
                    job: attempt.job,
                    node: node.id,
                    head,
                    body: ResponseBody::Local(LocalBody {
                        stream,
                        attempt: Some(attempt),
                        state: state.clone(),
                        sleep: Box::pin(tokio::time::sleep_until(deadline)),
                        timeout: req.timeout,
                        received: 0,
                        limit: MAX_RESPONSE_BODY_BYTES,
                        content_length,
                        ended: None,
                        permit: permit.take(),
                    }),
                });
            }
            Err(e) => e,
        };
        let (up, _) = stream.bytes();
        attempt.finish(state, e.outcome(), up, 0);
        drop(stream);
        // A node that was busy never started the job: it may take it again
        // once a slot is free, and any method may be sent again as long as
        // its body is still in hand. This waits for a slot rather than
        // failing, a bounded number of times.
        if e.node_was_busy() && resendable && busy < MAX_BUSY_RESENDS {
            busy += 1;
            tried.retain(|id| *id != node.id);
            tokio::time::sleep(BUSY_RESEND_DELAY).await;
            last_error = Some(e);
            continue;
        }
        // Only a failure of the node's own is worth another node, and only
        // for a request that may be sent twice.
        if !(e.another_node_may_help() && repeatable) {
            return Err(e);
        }
        attempt_no += 1;
        last_error = Some(e);
    }
    Err(last_error.unwrap_or(JobError::NodeFailed(NodeFailure::Disconnected)))
}

/// Waits for the node's response head, or says why there is none.
async fn await_head(
    state: &AppState,
    stream: &mut OpenStream,
    deadline: Instant,
    timeout: Duration,
) -> Result<ResponseHead, JobError> {
    Err(
        match tokio::time::timeout_at(deadline, stream.events.recv()).await {
            Ok(Some(StreamEvent::Head(head))) => return Ok(head),
            Err(_) => {
                stream.set_cancel_reason(CancelReason::DeadlinePassed);
                JobError::Timeout(timeout)
            }
            Ok(Some(StreamEvent::Failed(reason, message))) => {
                stream.set_finished();
                let site_retry = state.registry.caps.retry_after();
                JobError::before_head(reason, message, timeout, site_retry)
            }
            Ok(Some(StreamEvent::LocalError(f))) => body::local(f),
            Ok(Some(StreamEvent::NodeGone)) | Ok(None) => {
                JobError::NodeFailed(NodeFailure::Disconnected)
            }
            Ok(Some(StreamEvent::Body(_) | StreamEvent::End)) => {
                JobError::NodeFailed(NodeFailure::BodyBeforeHead)
            }
        },
    )
}

fn content_length(head: &ResponseHead) -> Option<u64> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
}
