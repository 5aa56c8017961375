//! One connection to the relay: WebSocket, hello, signed challenge, then a
//! loop that starts, feeds and cancels jobs, with a writer task that batches
//! frames and pings every [`PING_INTERVAL`].

use crate::job::{self, JobCtx, Slot};
use crate::outbox::Outbox;
use crate::{NodeContext, RelayAddress};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use spareband_protocol::flow::CreditGate;
use spareband_protocol::identity::sign_challenge;
use spareband_protocol::limits::{
    DEAD_PEER_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, PING_INTERVAL, STREAM_WINDOW,
};
use spareband_protocol::writer::Writer;
use spareband_protocol::{
    ClientKind, DecodeError, FailReason, NodeId, NodeMessage, PauseReason, RefuseCode,
    RelayMessage, StreamId, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, WHOLE_RESPONSE_VERSION,
};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How long running jobs may take to finish when the node is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How a connection ended without an error.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The node was asked to stop.
    Stopped,
    /// The relay said it is restarting.
    RelayRestarting,
    /// The connection closed.
    Closed(String),
}

/// How a connection failed. Every failure but an incompatible protocol
/// version is worth another attempt ([`ConnectionError::retryable`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The WebSocket could not be opened, or broke (network side).
    #[error("cannot connect to the relay: {0}")]
    Connect(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The connection closed during the handshake.
    #[error("cannot connect to the relay: connection closed")]
    ClosedEarly,
    /// No welcome within [`HANDSHAKE_TIMEOUT`].
    #[error("cannot connect to the relay: no welcome within {0:?}")]
    HandshakeTimeout(Duration),
    /// The relay refused the node.
    #[error("the relay refused this node ({code:?}): {message}")]
    Refused {
        /// Why.
        code: RefuseCode,
        /// The relay's words.
        message: String,
    },
    /// The relay sent a frame this node cannot decode.
    #[error("protocol error: malformed frame from relay: {0}")]
    Malformed(#[source] DecodeError),
    /// The relay sent a frame that does not belong where it came.
    #[error("protocol error: {0}")]
    Unexpected(String),
    /// Nothing came from the relay for [`DEAD_PEER_TIMEOUT`].
    #[error("protocol error: relay silent for {0:?}")]
    Silent(Duration),
}

impl ConnectionError {
    /// Whether connecting again may work. Only a relay that does not speak
    /// this node's protocol version is final; every other refusal comes from
    /// the relay's state (a restart, a slow handshake, a changed origin) and
    /// may pass on a later attempt.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            ConnectionError::Refused {
                code: RefuseCode::IncompatibleVersion,
                ..
            }
        )
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn recv(ws: &mut Ws) -> Result<RelayMessage, ConnectionError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                return RelayMessage::decode(&b).map_err(ConnectionError::Malformed)
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => {
                return Err(ConnectionError::Unexpected(format!(
                    "unexpected frame {other:?}"
                )))
            }
            Some(Err(e)) => return Err(ConnectionError::Connect(Box::new(e))),
            None => return Err(ConnectionError::ClosedEarly),
        }
    }
}

/// A TCP connection to the relay from the local address `local`: each of
/// the relay's addresses of the same family in turn, as the system's own
/// connect does.
async fn connect_from(local: std::net::IpAddr, relay: &url::Url) -> std::io::Result<TcpStream> {
    let host = relay.host_str().unwrap_or_default();
    let port = relay.port_or_known_default().unwrap_or(443);
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("{host} has no address of the family of {local}"),
    );
    for addr in tokio::net::lookup_host((host, port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A connection past its handshake.
struct Connected {
    ws: Ws,
    node_id: NodeId,
    /// The receipt key the relay offers.
    relay_key: [u8; 32],
    /// Whether the relay takes a small answer as one `Response` frame.
    whole_responses: bool,
}

/// Connects offering this node's version, and once more offering the oldest
/// it speaks when a relay older than it refuses the first (a relay of
/// version 3 refuses newer nodes; later ones serve them at their own).
async fn connect(shared: &NodeContext, relay: &RelayAddress) -> Result<Connected, ConnectionError> {
    match connect_offering(shared, relay, PROTOCOL_VERSION).await {
        Err(ConnectionError::Refused {
            code: RefuseCode::IncompatibleVersion,
            ..
        }) if MIN_PROTOCOL_VERSION < PROTOCOL_VERSION => {
            info!(relay = %relay.url, "the relay is older than this node; speaking version {MIN_PROTOCOL_VERSION}");
            connect_offering(shared, relay, MIN_PROTOCOL_VERSION).await
        }
        other => other,
    }
}

async fn connect_offering(
    shared: &NodeContext,
    relay: &RelayAddress,
    offer: u16,
) -> Result<Connected, ConnectionError> {
    let request = relay
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectionError::Connect(Box::new(e)))?;
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 8 * 1024;
    config.write_buffer_size = spareband_protocol::limits::WS_WRITE_BUFFER;
    config.max_message_size = Some(MAX_FRAME_BYTES);
    config.max_frame_size = Some(MAX_FRAME_BYTES);
    let connector = tokio_tungstenite::Connector::Rustls(shared.relay_tls.clone());
    let connected = match shared.bind {
        None => {
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                true,
                Some(connector),
            )
            .await
        }
        Some(local) => match connect_from(local, &relay.url).await {
            Ok(socket) => {
                tokio_tungstenite::client_async_tls_with_config(
                    request,
                    socket,
                    Some(config),
                    Some(connector),
                )
                .await
            }
            Err(e) => Err(tokio_tungstenite::tungstenite::Error::Io(e)),
        },
    };
    let (mut ws, _) = connected.map_err(|e| ConnectionError::Connect(Box::new(e)))?;
    let hello = NodeMessage::Hello {
        version: offer,
        client: ClientKind::Native,
        agent: format!("spareband-node/{}", env!("CARGO_PKG_VERSION")),
    };
    ws.send(Message::Binary(hello.encode()))
        .await
        .map_err(|e| ConnectionError::Connect(Box::new(e)))?;
    let (nonce, version) = match recv(&mut ws).await? {
        RelayMessage::Challenge { nonce, version } => (nonce, version),
        RelayMessage::Refused { code, message } => {
            return Err(ConnectionError::Refused { code, message })
        }
        other => {
            return Err(ConnectionError::Unexpected(format!(
                "expected a challenge, got {other:?}"
            )))
        }
    };
    let auth = NodeMessage::Auth {
        public_key: shared.key.verifying_key().to_bytes(),
        signature: sign_challenge(&shared.key, &nonce, &relay.origin, offer),
        max_concurrency: shared.max_concurrency,
    };
    ws.send(Message::Binary(auth.encode()))
        .await
        .map_err(|e| ConnectionError::Connect(Box::new(e)))?;
    match recv(&mut ws).await? {
        RelayMessage::Welcome { node_id, relay_key } => Ok(Connected {
            ws,
            node_id,
            relay_key,
            whole_responses: version >= WHOLE_RESPONSE_VERSION,
        }),
        RelayMessage::Refused { code, message } => Err(ConnectionError::Refused { code, message }),
        other => Err(ConnectionError::Unexpected(format!(
            "expected welcome, got {other:?}"
        ))),
    }
}

struct Job {
    task: tokio::task::JoinHandle<()>,
    credit: Arc<CreditGate>,
    body: Option<mpsc::UnboundedSender<Bytes>>,
    /// Request-body bytes carried from the relay (metered up).
    body_bytes: u64,
}

/// The availability frame for a pause (or none).
fn availability(shared: &NodeContext, paused: Option<PauseReason>) -> NodeMessage {
    NodeMessage::Availability {
        accepting: paused.is_none(),
        reason: paused.unwrap_or(PauseReason::Other),
        max_concurrency: shared.max_concurrency,
    }
}

/// Tells the relay when the owner's controls pause or resume the node.
fn recheck_pause(shared: &NodeContext, out: &Outbox, paused: &mut Option<PauseReason>) {
    let now = shared.owner.pause();
    if now != *paused {
        *paused = now;
        out.send(&availability(shared, now));
        match now {
            Some(reason) => info!(?reason, "paused by the owner's controls"),
            None => info!("sharing again"),
        }
    }
}

/// Runs one connection until it ends.
pub async fn run(
    shared: &NodeContext,
    relay: &RelayAddress,
    stop: &CancellationToken,
) -> Result<ConnectionEnd, ConnectionError> {
    let Connected {
        ws,
        node_id,
        relay_key: offered_key,
        whole_responses,
    } = timeout(HANDSHAKE_TIMEOUT, connect(shared, relay))
        .await
        .map_err(|_| ConnectionError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    info!(node = %node_id, relay = %relay.url, "connected; sharing");
    let relay_key = crate::receipts::pin(&shared.pin_file, &relay.origin, offered_key);
    let mut book = crate::receipts::ReceiptBook::new(node_id, relay_key);
    let payout = shared
        .payout
        .as_ref()
        .map(|address| NodeMessage::SetPayout {
            address: address.clone(),
            signature: spareband_protocol::identity::sign_payout(&shared.key, address),
        });
    let (sink, mut stream) = ws.split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let out = Outbox(out_tx);
    let writer = tokio::spawn(writer(sink, out_rx));
    if let Some(p) = payout {
        out.send(&p);
    }
    if !shared.blocked.is_empty() {
        out.send(&NodeMessage::BlockList {
            domains: shared.blocked.as_ref().clone(),
        });
    }
    let (done_tx, mut done_rx) =
        mpsc::unbounded_channel::<(StreamId, spareband_protocol::JobId, Option<(u64, u64)>)>();
    let mut jobs: HashMap<StreamId, Job> = HashMap::new();
    // Jobs holding a slot: each gives its slot back just before its last
    // frame, earlier than it leaves `jobs` (see `job::Slot`).
    let running = Arc::new(AtomicUsize::new(0));
    // Delivered jobs by stream, for request-body frames that arrive after
    // the job ended (they still count until the receipt).
    let mut ended: HashMap<StreamId, spareband_protocol::JobId> = HashMap::new();
    let mut stopping: Option<tokio::time::Instant> = None;
    // The owner's caps and schedule: told to the relay at once when they
    // pause the node, and again whenever that changes.
    let mut paused = shared.owner.pause();
    if let Some(reason) = paused {
        out.send(&availability(shared, paused));
        info!(?reason, "paused by the owner's controls");
    }
    let mut pause_check = tokio::time::interval(crate::owner::PAUSE_CHECK_EVERY);
    pause_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        if let Some(at) = stopping {
            if jobs.is_empty() || tokio::time::Instant::now() >= at {
                break Ok(ConnectionEnd::Stopped);
            }
        }
        tokio::select! {
            _ = stop.cancelled(), if stopping.is_none() => {
                // Take no new jobs; let running ones finish within the grace.
                out.send(&NodeMessage::Availability {
                    accepting: false,
                    reason: PauseReason::Other,
                    max_concurrency: shared.max_concurrency,
                });
                stopping = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
            _ = tokio::time::sleep(Duration::from_millis(100)), if stopping.is_some() => {}
            _ = pause_check.tick(), if stopping.is_none() => {
                recheck_pause(shared, &out, &mut paused);
            }
            Some((id, job, counts)) = done_rx.recv() => {
                let body_bytes = jobs.remove(&id).map_or(0, |j| j.body_bytes);
                if let Some((up, down)) = counts {
                    let up = up + body_bytes;
                    shared.owner.record(up + down);
                    if stopping.is_none() && shared.owner.has_caps() {
                        // A cap reached pauses the node before the next job.
                        recheck_pause(shared, &out, &mut paused);
                    }
                    if ended.len() >= spareband_protocol::receipts::MAX_OPEN {
                        ended.clear();
                    }
                    ended.insert(id, job);
                    crate::receipts::record(&shared.receipts, &job, book.delivered(job, up, down));
                }
            }
            next = timeout(DEAD_PEER_TIMEOUT, stream.next()) => {
                let frame = match next {
                    Err(_) => break Err(ConnectionError::Silent(DEAD_PEER_TIMEOUT)),
                    Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break Ok(ConnectionEnd::Closed("closed by the relay".into())),
                    Ok(Some(Err(e))) => break Ok(ConnectionEnd::Closed(e.to_string())),
                    Ok(Some(Ok(Message::Binary(b)))) => b,
                    Ok(Some(Ok(_))) => continue,
                };
                let msg = match RelayMessage::decode(&frame) {
                    Ok(m) => m,
                    Err(e) => break Err(ConnectionError::Malformed(e)),
                };
                match msg {
                    RelayMessage::Request(head) => {
                        let stream_id = head.stream;
                        let slot = match (stopping, paused) {
                            (None, None) => Slot::take(&running, shared.max_concurrency as usize),
                            _ => None,
                        };
                        let Some(slot) = slot else {
                            let paused = stopping.is_some() || paused.is_some();
                            out.send(&NodeMessage::Fail {
                                stream: stream_id,
                                reason: if paused { FailReason::Paused } else { FailReason::Busy },
                                message: "the node is not taking more jobs right now".into(),
                            });
                            continue;
                        };
                        let credit = Arc::new(CreditGate::new(STREAM_WINDOW));
                        let (body_tx, body_rx) = if head.body.has_body() {
                            let (t, r) = mpsc::unbounded_channel();
                            (Some(t), Some(r))
                        } else {
                            (None, None)
                        };
                        let ctx = JobCtx {
                            slot: Some(slot),
                            stream: stream_id,
                            out: out.clone(),
                            credit: credit.clone(),
                            body: body_rx,
                            client: shared.client.clone(),
                            connector: shared.connector.clone(),
                            policy: shared.policy.clone(),
                            blocked: shared.blocked.clone(),
                            guard: shared.guard.clone(),
                            whole_responses,
                            owner: shared.owner.clone(),
                        };
                        let done = done_tx.clone();
                        let job_id = head.job;
                        let task = tokio::spawn(async move {
                            let counts = job::run(ctx, head).await;
                            let _ = done.send((stream_id, job_id, counts));
                        });
                        jobs.insert(stream_id, Job { task, credit, body: body_tx, body_bytes: 0 });
                    }
                    RelayMessage::RequestBody { stream, data } => {
                        if let Some(j) = jobs.get_mut(&stream) {
                            j.body_bytes += data.len() as u64;
                            if let Some(tx) = &j.body {
                                let _ = tx.send(data);
                            }
                        } else if let Some(job) = ended.get(&stream) {
                            book.late_body(*job, data.len() as u64);
                        }
                    }
                    RelayMessage::RequestEnd { stream } => {
                        if let Some(j) = jobs.get_mut(&stream) {
                            j.body = None;
                        }
                    }
                    RelayMessage::Credit { stream, bytes } => {
                        if let Some(j) = jobs.get(&stream) {
                            j.credit.grant(bytes);
                        }
                    }
                    RelayMessage::Cancel { stream, reason } => {
                        if let Some(j) = jobs.remove(&stream) {
                            debug!(stream, ?reason, "job cancelled by the relay");
                            j.credit.close();
                            j.task.abort();
                        }
                    }
                    RelayMessage::Ping { nonce } => {
                        out.send(&NodeMessage::Pong { nonce });
                    }
                    RelayMessage::Pong { .. } => {}
                    RelayMessage::Rules(rules) => {
                        debug!(denied = rules.deny.len(), site_per_minute = rules.site_per_minute,
                               public_ip = ?rules.public_ip, "rules for every hop");
                        shared.guard.set_rules(rules);
                    }
                    RelayMessage::Receipts(batch) => {
                        for (job, check) in book.receipts(batch) {
                            crate::receipts::record(&shared.receipts, &job, check);
                        }
                    }
                    RelayMessage::Rewards(t) => {
                        if !t.earning {
                            tracing::warn!(
                                "another node on this IP address already earns: this node serves without pay"
                            );
                        }
                        tracing::info!(
                            earning = t.earning,
                            reward_per_gib = %t.reward_per_gib,
                            epoch_secs = t.epoch_ms / 1000,
                            last_closed_epoch = t.last_closed_epoch,
                            claimable = %t.claimable,
                            "reward terms"
                        );
                    }
                    RelayMessage::Refused { code: RefuseCode::ShuttingDown, .. } => {
                        break Ok(ConnectionEnd::RelayRestarting)
                    }
                    RelayMessage::Refused { code, message } => {
                        break Err(ConnectionError::Refused { code, message })
                    }
                    RelayMessage::Challenge { .. } | RelayMessage::Welcome { .. } => {
                        break Err(ConnectionError::Unexpected("handshake frame after the handshake".into()))
                    }
                }
            }
        }
    };
    for (_, j) in jobs.drain() {
        j.task.abort();
    }
    drop(out);
    drop(done_tx);
    let _ = writer.await;
    end
}

async fn writer(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let w = Writer {
        wrap: Message::Binary,
        ping: |nonce| NodeMessage::Ping { nonce }.encode(),
        taken: |_| {},
        ping_every: PING_INTERVAL,
    };
    let result: Result<(), tokio_tungstenite::tungstenite::Error> = async {
        w.run(&mut sink, &mut rx, std::future::pending::<()>())
            .await?;
        sink.send(Message::Close(None)).await
    }
    .await;
    if let Err(e) = result {
        debug!(error = %e, "writer ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_connection_comes_from_the_address_asked_for() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            url::Url::parse(&format!("ws://{}/v1/node", listener.local_addr().unwrap())).unwrap();
        let local: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let (client, accepted) = tokio::join!(connect_from(local, &url), listener.accept());
        assert_eq!(client.unwrap().local_addr().unwrap().ip(), local);
        assert_eq!(accepted.unwrap().1.ip(), local);
        // No address of the relay is of the bound address's family.
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        let e = connect_from(v6, &url).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable);
    }

    #[test]
    fn only_an_incompatible_version_is_final() {
        let refused = |code| ConnectionError::Refused {
            code,
            message: "no".into(),
        };
        assert!(!refused(RefuseCode::IncompatibleVersion).retryable());
        assert!(refused(RefuseCode::BadSignature).retryable());
        assert!(refused(RefuseCode::ShuttingDown).retryable());
        assert!(ConnectionError::ClosedEarly.retryable());
        assert!(ConnectionError::Silent(DEAD_PEER_TIMEOUT).retryable());
        assert_eq!(
            ConnectionError::HandshakeTimeout(Duration::from_secs(10)).to_string(),
            "cannot connect to the relay: no welcome within 10s"
        );
    }
}
