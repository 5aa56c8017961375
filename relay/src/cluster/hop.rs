//! The relay-to-relay hop: a job whose node another relay of the cluster
//! holds goes to that relay over HTTP/2 ([`HOP_PATH`] on its usual
//! listener), authenticated by the cluster secret. Bodies stream both ways
//! on the HTTP/2 stream, under its flow control; NATS carries none of them.
//!
//! On the wire, each direction starts with a length-prefixed JSON document
//! ([`HopJob`] to the peer, [`HopHead`] back), followed by the body's bytes.
//! A job that fails before its head comes back as a non-200 answer carrying
//! a [`HopError`].
//!
//! The relay holding the node runs the job as its own: it screens the
//! target, picks the node, meters the bytes, writes the one usage record
//! and sends the receipt. The relay the customer called admitted the job
//! against the key's limits and only streams the answer on, so a job is
//! counted once whichever relay took it.

use crate::api::request;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::error::{JobError, PeerError, Side};
use crate::jobs::{self, JobBody, JobRequest, JobResponse, ResponseBody};
use crate::secret::ClusterSecret;
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use spareband_ledger::CustomerId;
use spareband_protocol::limits::MAX_REQUEST_BODY_BYTES;
use spareband_protocol::{Header, JobId, NodeId, ResponseHead};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Where a relay takes jobs from its peers.
pub const HOP_PATH: &str = "/cluster/v1/job";
/// Largest job description or response head on the hop: a request's
/// headers are at most 64 KiB, so this is room and a bound for a peer
/// that sends a length it never fills.
pub const MAX_HOP_DOC_BYTES: usize = 1024 * 1024;
/// How long past the job's own deadline the relay that forwarded it waits
/// for the peer: the peer ends the job at the deadline and needs a moment
/// to say so.
pub const HOP_GRACE: Duration = Duration::from_secs(2);
/// Longest a connection to a peer may take.
pub const HOP_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Streams this relay cancelled (a customer gone mid-answer) whose late
/// frames the hop client still recognises and drops quietly. Past it, a late
/// frame is answered with a reset that HTTP/2 counts against the connection
/// for its whole life (hyper closes it at 1,024), failing every job on it.
pub const HOP_REMEMBERED_RESETS: usize = 4096;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HopBody = UnsyncBoxBody<Bytes, BoxError>;

/// A job sent to the relay that holds its node.
#[derive(Debug, Serialize, Deserialize)]
pub struct HopJob {
    /// The customer, admitted by the relay it called.
    pub customer: CustomerId,
    /// HTTP method.
    pub method: String,
    /// The target, checked again by the peer's own policy.
    pub url: String,
    /// Headers, values in base64 (they may be any bytes).
    pub headers: Vec<[String; 2]>,
    /// What follows the document.
    pub body: HopBodyKind,
    /// Country filter.
    pub country: Option<String>,
    /// Only nodes in this city, region and network.
    #[serde(default)]
    pub city: Option<String>,
    /// See `city`.
    #[serde(default)]
    pub region: Option<String>,
    /// See `city`.
    #[serde(default)]
    pub asn: Option<u32>,
    /// Sticky session name.
    pub session: Option<String>,
    /// The session's lifetime in seconds, when the customer chose one.
    #[serde(default)]
    pub session_ttl_secs: Option<u64>,
    /// The node the job must run on (a session pinned there).
    pub only: Option<String>,
    /// What is left of the job's time.
    pub timeout_ms: u64,
}

/// The request body after a [`HopJob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HopBodyKind {
    /// No body.
    Empty,
    /// A body the customer sent whole (JSON mode): the peer reads it all,
    /// so it can send it again to a second node.
    Buffered,
    /// A streamed body (raw mode), with its declared length if any.
    Streamed(Option<u64>),
}

/// The answer's head, from the relay that ran the job.
#[derive(Debug, Serialize, Deserialize)]
pub struct HopHead {
    /// The job's id (its usage record's key on the peer).
    pub job: String,
    /// The node that served it.
    pub node: String,
    /// The target's status.
    pub status: u16,
    /// The target's headers, values in base64.
    pub headers: Vec<[String; 2]>,
}

/// A job that failed on the peer before its head.
#[derive(Debug, Serialize, Deserialize)]
pub struct HopError {
    /// The API error code.
    pub code: String,
    /// Its words.
    pub message: String,
    /// Which side failed ([`Side`] in lower case).
    pub side: String,
    /// Whether the same request may work later.
    pub retryable: bool,
    /// Seconds to wait, when the peer knows.
    pub retry_after: Option<u64>,
    /// Whether another relay may have a node that helps.
    pub elsewhere: bool,
}

fn encode_headers(h: &[Header]) -> Vec<[String; 2]> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    h.iter().map(|(n, v)| [n.clone(), b64.encode(v)]).collect()
}

fn decode_headers(h: Vec<[String; 2]>) -> Option<Vec<Header>> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    h.into_iter()
        .map(|[n, v]| Some((n, Bytes::from(b64.decode(v).ok()?))))
        .collect()
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Customer => "customer",
        Side::Key => "key",
        Side::Node => "node",
        Side::Target => "target",
        Side::Relay => "relay",
    }
}

fn side_of(s: &str) -> Side {
    match s {
        "customer" => Side::Customer,
        "key" => Side::Key,
        "target" => Side::Target,
        "relay" => Side::Relay,
        _ => Side::Node,
    }
}

/// A document as it goes on the hop: its length (4 bytes, big-endian),
/// then its JSON.
fn prefix(doc: &impl Serialize) -> Bytes {
    let json = serde_json::to_vec(doc).unwrap_or_default();
    let mut out = BytesMut::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.freeze()
}

/// Why a hop document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// Longer than [`MAX_HOP_DOC_BYTES`].
    #[error("a hop document of {0} bytes is longer than {MAX_HOP_DOC_BYTES}")]
    TooLong(usize),
    /// The body ended or failed first.
    #[error("the hop body ended before its document")]
    Cut,
    /// Not the document expected.
    #[error("the hop document is not valid: {0}")]
    Invalid(serde_json::Error),
}

/// Reads the document at the start of `body`; returns it and the bytes
/// already read past it.
async fn read_prefix<T: DeserializeOwned, B>(body: &mut B) -> Result<(T, Bytes), PrefixError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let mut need = 4usize;
    loop {
        if buf.len() >= need {
            if need == 4 {
                let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                if len > MAX_HOP_DOC_BYTES {
                    return Err(PrefixError::TooLong(len));
                }
                need = 4 + len;
                continue;
            }
            buf.advance(4);
            let rest = buf.split_off(need - 4);
            let doc = serde_json::from_slice(&buf).map_err(PrefixError::Invalid)?;
            return Ok((doc, rest.freeze()));
        }
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            _ => return Err(PrefixError::Cut),
        }
    }
}

/// `first`, then the rest of `body`.
fn prepend<B>(first: Bytes, body: B) -> HopBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    Prepend {
        first: (!first.is_empty()).then_some(first),
        rest: body,
    }
    .boxed_unsync()
}

/// A body with some bytes before it: what was read past a hop document,
/// or the document itself. A type rather than a stream of closures, whose
/// lifetimes the compiler cannot prove `Send` across the handler's awaits.
struct Prepend<B> {
    first: Option<Bytes>,
    rest: B,
}

impl<B> Body for Prepend<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

/// The trailer the relay that ran a job sends at its end: the bytes it
/// metered, up and down, so the relay the customer called reports what the
/// ledger holds.
pub const METERED_TRAILER: &str = "spareband-metered";

/// A job's answer on the hop, closed by a [`METERED_TRAILER`].
struct Metered {
    body: ResponseBody,
    done: bool,
}

impl Body for Metered {
    type Data = Bytes;
    type Error = JobError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => {
                self.done = true;
                let (up, down) = self.body.bytes();
                let mut t = http::HeaderMap::new();
                if let Ok(v) = http::HeaderValue::from_str(&format!("{up} {down}")) {
                    t.insert(METERED_TRAILER, v);
                }
                Poll::Ready(Some(Ok(Frame::trailers(t))))
            }
            other => other,
        }
    }
}

/// The client relays reach each other with: HTTP/2 only, over TLS for an
/// `https://` peer (checked against the WebPKI roots) or in clear for an
/// `http://` one on a private network.
#[derive(Clone)]
pub struct HopClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        HopBody,
    >,
    secret: ClusterSecret,
}

impl HopClient {
    /// A client presenting `secret`.
    pub fn new(secret: ClusterSecret) -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(HOP_CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http2()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .http2_keep_alive_interval(crate::config::H2_KEEP_ALIVE_INTERVAL)
                .http2_keep_alive_timeout(crate::config::H2_KEEP_ALIVE_TIMEOUT)
                .http2_max_concurrent_reset_streams(HOP_REMEMBERED_RESETS)
                .build(https);
        HopClient { client, secret }
    }

    /// Sends `req` to the relay at `peer` and waits for its head. The job's
    /// body goes with it (a buffered one stays in `req` for another try).
    pub async fn forward(
        &self,
        peer: &str,
        req: &mut JobRequest,
        only: Option<NodeId>,
        deadline: Instant,
    ) -> Result<JobResponse, JobError> {
        let (kind, body): (HopBodyKind, HopBody) =
            match std::mem::replace(&mut req.body, JobBody::Empty) {
                JobBody::Empty => (
                    HopBodyKind::Empty,
                    prepend(Bytes::new(), http_body_util::Empty::new()),
                ),
                JobBody::Buffered(b) => {
                    req.body = JobBody::Buffered(b.clone());
                    (
                        HopBodyKind::Buffered,
                        prepend(Bytes::new(), http_body_util::Full::new(b)),
                    )
                }
                JobBody::Streaming { body, length } => {
                    (HopBodyKind::Streamed(length), prepend(Bytes::new(), body))
                }
            };
        let up = match &req.body {
            JobBody::Buffered(b) => b.len() as u64,
            _ => 0,
        };
        let doc = HopJob {
            customer: req.customer,
            method: req.method.clone(),
            url: req.target.url.to_string(),
            headers: encode_headers(&req.headers),
            body: kind,
            country: req.country.clone(),
            city: req.area.city.clone(),
            region: req.area.region.clone(),
            asn: req.area.asn,
            session: req.session.clone(),
            session_ttl_secs: req.session_ttl.map(|t| t.as_secs()),
            only: only.map(|n| n.to_string()),
            timeout_ms: deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
        };
        let whole = prepend(prefix(&doc), body);
        let uri = format!("{}{HOP_PATH}", peer.trim_end_matches('/'));
        let request = http::Request::post(uri)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.secret.reveal()),
            )
            .body(whole)
            .map_err(|e| JobError::Peer(PeerError::unreachable(peer, &e.to_string())))?;
        let answer = tokio::time::timeout_at(deadline + HOP_GRACE, self.client.request(request))
            .await
            .map_err(|_| JobError::Timeout(req.timeout))?
            .map_err(|e| JobError::Peer(PeerError::unreachable(peer, &e.to_string())))?;
        let status = answer.status();
        let mut incoming = answer.into_body();
        if status != http::StatusCode::OK {
            let raw = tokio::time::timeout_at(
                deadline + HOP_GRACE,
                http_body_util::Limited::new(incoming, MAX_HOP_DOC_BYTES).collect(),
            )
            .await
            .map_err(|_| JobError::Timeout(req.timeout))?
            .map_err(|_| JobError::Peer(PeerError::unreachable(peer, "its error was cut")))?
            .to_bytes();
            return Err(JobError::Peer(
                match serde_json::from_slice::<HopError>(&raw) {
                    Ok(e) => PeerError {
                        code: ErrorCode::parse(&e.code).unwrap_or(ErrorCode::NodeFailed),
                        message: e.message,
                        side: side_of(&e.side),
                        retryable: e.retryable,
                        retry_after: e.retry_after.map(Duration::from_secs),
                        elsewhere: e.elsewhere,
                        reached: true,
                    },
                    Err(_) => {
                        tracing::error!(%peer, %status, "a relay of the cluster refused a job hop (is cluster_secret the same on every relay?)");
                        PeerError::unreachable(peer, &format!("it answered {status}"))
                    }
                },
            ));
        }
        let (head, rest): (HopHead, Bytes) =
            tokio::time::timeout_at(deadline + HOP_GRACE, read_prefix(&mut incoming))
                .await
                .map_err(|_| JobError::Timeout(req.timeout))?
                .map_err(|e| JobError::Peer(PeerError::unreachable(peer, &e.to_string())))?;
        let bad = || {
            JobError::Peer(PeerError::unreachable(
                peer,
                "its answer's head is not valid",
            ))
        };
        let job = hex::decode(&head.job)
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(JobId)
            .ok_or_else(bad)?;
        let node = NodeId::parse(&head.node).ok_or_else(bad)?;
        let headers = decode_headers(head.headers).ok_or_else(bad)?;
        let content_length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .filter(|_| req.method != "HEAD" && !matches!(head.status, 204 | 304));
        Ok(JobResponse {
            job,
            node,
            head: ResponseHead {
                stream: 0,
                status: head.status,
                headers,
            },
            body: ResponseBody::Remote(RemoteBody {
                inner: prepend(rest, incoming),
                sleep: Box::pin(tokio::time::sleep_until(deadline + HOP_GRACE)),
                timeout: req.timeout,
                received: 0,
                up,
                limit: spareband_protocol::limits::MAX_RESPONSE_BODY_BYTES,
                content_length,
                done: false,
                held: None,
                metered: None,
                permit: req.permit.take(),
            }),
        })
    }
}

/// The answer of a job another relay ran, streamed on. The peer meters and
/// records it; this side only bounds it (the mode's size limit, the job's
/// deadline) and drops the HTTP/2 stream to cancel it.
pub struct RemoteBody {
    inner: HopBody,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    received: u64,
    up: u64,
    limit: u64,
    content_length: Option<u64>,
    done: bool,
    /// The last bytes of a body of known length, held until the peer ends
    /// its stream: once a customer's connection has all the bytes its
    /// `content-length` promised it stops asking, and a stream dropped before
    /// its trailers arrive is cancelled, which the peer's trailers then turn
    /// into a reset counted against the whole hop connection (at 64
    /// customers it was closed within a second, failing every job on it).
    held: Option<Frame<Bytes>>,
    /// What the relay that ran the job metered, once it has said.
    metered: Option<(u64, u64)>,
    /// The key's concurrency slot on this relay, held until the body ends.
    permit: Option<crate::keylimits::Permit>,
}

impl Drop for RemoteBody {
    fn drop(&mut self) {
        // The key's quota counts what the job delivered, as the relay that
        // ran it metered it when it said.
        let (up, down) = self.bytes();
        if let Some(p) = &mut self.permit {
            p.spend(up + down);
        }
    }
}

impl RemoteBody {
    /// Caps the body (JSON mode holds it in memory).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Bytes (up, down): as the relay that ran the job metered them, once
    /// it has said; until then, the bodies' bytes as this relay saw them.
    pub fn bytes(&self) -> (u64, u64) {
        self.metered.unwrap_or((self.up, self.received))
    }

    /// How big the body is, when its head said.
    pub fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }

    /// The next piece of the body.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(JobError::Timeout(self.timeout))));
        }
        loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(f))) if f.is_trailers() => {
                    // Kept, not handed on: the customer's answer ends here.
                    let t = f.into_trailers().unwrap_or_default();
                    self.metered = t
                        .get(METERED_TRAILER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split_once(' '))
                        .and_then(|(u, d)| Some((u.parse().ok()?, d.parse().ok()?)));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(self.held.take().map(Ok));
                }
                Poll::Ready(Some(Ok(f))) => {
                    let len = f.data_ref().map_or(0, |d| d.len() as u64);
                    self.received += len;
                    if self.received > self.limit {
                        self.done = true;
                        return Poll::Ready(Some(Err(JobError::ResponseTooLarge(
                            jobs::error::TooLarge::Relay(self.limit),
                        ))));
                    }
                    if self.held.is_some() && len > 0 {
                        self.done = true;
                        return Poll::Ready(Some(Err(JobError::Peer(PeerError {
                            message: "the relay holding the node sent more than the answer's \
                                      content-length"
                                .into(),
                            ..PeerError::unreachable("", "")
                        }))));
                    }
                    if self.content_length == Some(self.received) && self.held.is_none() {
                        self.held = Some(f);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(f)));
                }
                Poll::Ready(Some(Err(_))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(JobError::NodeFailed(
                        jobs::error::NodeFailure::DisconnectedMidResponse,
                    ))));
                }
            }
        }
    }

    /// Whether the body has ended.
    pub fn is_end_stream(&self) -> bool {
        self.done
    }
}

fn hop_error(e: &JobError) -> Response {
    let api = ApiError::from(e.clone());
    let doc = HopError {
        code: api.code.as_str().to_string(),
        message: api.message.clone(),
        side: side_name(e.side()).to_string(),
        retryable: e.retryable(),
        retry_after: e
            .retry_after()
            .map(|d| d.as_secs_f64().ceil().max(1.0) as u64),
        elsewhere: e.another_relay_may_help(),
    };
    (api.code.status(), axum::Json(doc)).into_response()
}

fn refused(code: ErrorCode, message: impl Into<String>) -> Response {
    let doc = HopError {
        code: code.as_str().to_string(),
        message: message.into(),
        side: "relay".into(),
        retryable: false,
        retry_after: None,
        elsewhere: false,
    };
    (code.status(), axum::Json(doc)).into_response()
}

/// `POST /cluster/v1/job`: a job from another relay of the cluster, run
/// here on one of this relay's nodes.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(secret) = state.config.cluster_secret.clone() else {
        return crate::api::not_found().await.into_response();
    };
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| secret.matches(p)) {
        return refused(
            ErrorCode::Unauthorized,
            "not a relay of this cluster (wrong or missing cluster secret)",
        );
    }
    let mut body = req.into_body();
    let (doc, rest): (HopJob, Bytes) = match read_prefix(&mut body).await {
        Ok(x) => x,
        Err(e) => return refused(ErrorCode::InvalidRequest, e.to_string()),
    };
    let job = match job_of(&state, doc, rest, body).await {
        Ok(j) => j,
        Err(e) => return refused(e.code, e.message),
    };
    if state.cluster.get().is_none() {
        return crate::api::not_found().await.into_response();
    }
    match jobs::run(&state, job).await {
        Ok(res) => {
            let head = HopHead {
                job: res.job.to_string(),
                node: res.node.to_string(),
                status: res.head.status,
                headers: encode_headers(&res.head.headers),
            };
            let body = Metered {
                body: res.body,
                done: false,
            };
            Response::new(axum::body::Body::new(prepend(prefix(&head), body)))
        }
        Err(e) => hop_error(&e),
    }
}

/// The job a peer described, checked by this relay's own rules.
async fn job_of(
    state: &AppState,
    doc: HopJob,
    rest: Bytes,
    body: axum::body::Body,
) -> Result<JobRequest, ApiError> {
    let target = request::target(&state.policy, &doc.url)?;
    let method = request::method(Some(&doc.method))?;
    let raw = decode_headers(doc.headers)
        .ok_or_else(|| ApiError::invalid_request("a hop header is not base64"))?;
    let headers = request::headers(raw.iter().map(|(n, v)| (n.as_str(), &v[..])), true)?;
    let only = match doc.only {
        Some(s) => Some(
            NodeId::parse(&s)
                .ok_or_else(|| ApiError::invalid_request("'only' is not a node id"))?,
        ),
        None => None,
    };
    let body = match doc.body {
        HopBodyKind::Empty => {
            // Read to its end, so the stream is closed from the sending
            // side before the answer starts and nothing of it is left to
            // cancel, and a hop that says "no body" and sends one is refused.
            let refused =
                || ApiError::invalid_request("a hop job said it had no body, and sent one");
            if !rest.is_empty() {
                return Err(refused());
            }
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| {
                    ApiError::invalid_request("the hop's request body could not be read")
                })?;
                if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    return Err(refused());
                }
            }
            JobBody::Empty
        }
        HopBodyKind::Buffered => {
            let mut all = BytesMut::from(&rest[..]);
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| {
                    ApiError::invalid_request("the hop's request body could not be read")
                })?;
                if let Some(d) = frame.data_ref() {
                    all.extend_from_slice(d);
                }
                if all.len() as u64 > MAX_REQUEST_BODY_BYTES {
                    return Err(ApiError::new(
                        ErrorCode::RequestTooLarge,
                        format!("the body is larger than {MAX_REQUEST_BODY_BYTES} bytes"),
                    ));
                }
            }
            JobBody::Buffered(all.freeze())
        }
        HopBodyKind::Streamed(length) => JobBody::Streaming {
            body: axum::body::Body::new(prepend(rest, body)),
            length,
        },
    };
    Ok(JobRequest {
        customer: doc.customer,
        method,
        target,
        headers,
        body,
        country: request::country(doc.country.as_deref())?,
        area: request::area(
            doc.city.as_deref(),
            doc.region.as_deref(),
            doc.asn.map(u64::from),
        )?,
        session: request::session(doc.session.as_deref())?,
        session_ttl: request::session_ttl(doc.session_ttl_secs)?,
        timeout: Duration::from_millis(doc.timeout_ms.clamp(1, u32::MAX as u64)),
        permit: None,
        only,
        from_peer: true,
    })
}
