//! The node gateway: `GET /v1/node` upgrades to a WebSocket, the node proves
//! its key, and then one reader (this task) and one writer (a spawned task)
//! carry frames until either side goes away. Each connection runs in one
//! tracing span carrying the peer address and, once known, the node id.

use super::handle::{NewNode, NodeHandle};
use super::state_log::StateLog;
use super::{frames, handshake, payouts};
use crate::error::ApiError;
use crate::server::ConnInfo;
use crate::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use spareband_ledger::nodes::NodeRecord;
use spareband_protocol::limits::{
    DEAD_PEER_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, PING_INTERVAL,
};
use spareband_protocol::rules::{canonical, NodeRules};
use spareband_protocol::writer::{Ended, Writer};
use spareband_protocol::{NodeMessage, RefuseCode, RelayMessage};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{debug, info, info_span, warn, Instrument};

/// Bytes tungstenite reads from the socket at a time, a buffer every
/// connection holds while idle. Its 128 KiB default would cost that much per
/// idle node; frames larger than this are still assembled, just in more
/// reads. 8 KiB -> 2 KiB took an idle TLS node from 22.6 to 17.1 KiB with no
/// change beyond noise on one 256 MiB stream or on small requests; 1 KiB
/// saved nothing measurable (docs/BENCHMARKS.md, issue 13).
const WS_READ_BUFFER: usize = 2 * 1024;
/// Pings a node may send at once, then [`NODE_PINGS_PER_SEC`] a second.
/// Nodes ping every 20 s; a node over this budget is flooding and is
/// dropped, before its pongs can pile up.
const NODE_PING_BURST: f64 = 10.0;
/// See [`NODE_PING_BURST`].
const NODE_PINGS_PER_SEC: f64 = 1.0;
/// Longest the writer may take to send what is queued after the node is
/// gone; past it the writer is stopped (a node that does not read would
/// hold it for ever).
const WRITER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /v1/node`.
pub async fn upgrade(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let mut parts = parts;
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::invalid_request(
                "this endpoint is for nodes and needs a WebSocket upgrade",
            )
            .into_response()
        }
    };
    let peer = parts
        .extensions
        .get::<ConnInfo>()
        .map(|c| c.peer.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = state.geo.client_ip(peer, &parts.headers);
    ws.read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(spareband_protocol::limits::WS_WRITE_BUFFER)
        .max_write_buffer_size(MAX_FRAME_BYTES * 4)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let span = info_span!("node", %ip, node = tracing::field::Empty);
            run(state, socket, ip).instrument(span)
        })
}

async fn refuse(socket: &mut WebSocket, code: RefuseCode, message: String) {
    info!(?code, %message, "node refused");
    let frame = RelayMessage::Refused { code, message }.encode();
    let _ = socket.send(Message::Binary(frame)).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// One node's connection from upgrade to close. The task lives as long as
/// the connection, and tokio allocates a task as large as its largest state:
/// the set-up (handshake, database, reward terms) and the tear-down run as
/// boxed futures of their own, so an idle node's task holds only what the
/// reader needs. Inline, the three made a 3.5 KiB task per idle node (issue
/// 13's memory goal, docs/BENCHMARKS.md).
async fn run(state: Arc<AppState>, socket: WebSocket, ip: IpAddr) {
    let Some(Admitted {
        socket,
        handle,
        out_rx,
        node_id,
    }) = Box::pin(admit(&state, socket, ip)).await
    else {
        return;
    };
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(
        writer(sink, out_rx, handle.clone(), state.node_shutdown.clone())
            .instrument(tracing::Span::current()),
    );
    let why = reader(&state, &handle, stream).await;
    Box::pin(close(state, handle, node_id, writer, why)).await;
}

/// A node past its handshake, in the registry.
struct Admitted {
    socket: WebSocket,
    handle: Arc<NodeHandle>,
    /// Frames for the node, for its writer.
    out_rx: mpsc::UnboundedReceiver<Bytes>,
    /// The node id as stored.
    node_id: String,
}

/// The handshake and everything before the first job: welcome and rules,
/// the node's row, its place in the registry, its earning state and terms.
/// `None` when the node was refused (it has been told why).
async fn admit(state: &Arc<AppState>, mut socket: WebSocket, ip: IpAddr) -> Option<Admitted> {
    let auth = match timeout(
        HANDSHAKE_TIMEOUT,
        handshake::handshake(&mut socket, &state.node_origins),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            refuse(&mut socket, e.code(), e.to_string()).await;
            return None;
        }
        Err(_) => {
            refuse(
                &mut socket,
                RefuseCode::HandshakeTimeout,
                format!("no valid Hello and Auth within {HANDSHAKE_TIMEOUT:?}"),
            )
            .await;
            return None;
        }
    };
    tracing::Span::current().record("node", tracing::field::display(auth.id));
    let welcome = RelayMessage::Welcome {
        node_id: auth.id,
        relay_key: state.relay_key.0.verifying_key().to_bytes(),
    };
    // The rules every redirect hop must pass go before any job can.
    let rules = RelayMessage::Rules(NodeRules {
        deny: state.deny.entries().to_vec(),
        site_per_minute: state.registry.caps.per_minute(),
        public_ip: Some(canonical(ip)),
    });
    for frame in [welcome, rules] {
        if socket.send(Message::Binary(frame.encode())).await.is_err() {
            return None;
        }
    }
    // From here until it is in the registry, this connection counts as the
    // node's: an older connection closing meanwhile must not record the
    // node offline after this one recorded it online.
    let _arriving = state.registry.arriving(auth.id);
    let country = state.geo.country(ip);
    let node_id = auth.id.to_string();
    if let Err(e) = state
        .db
        .upsert_node(&NodeRecord {
            node_id: &node_id,
            public_key: &hex::encode(auth.public_key),
            client_kind: auth.kind.as_str(),
            agent: &auth.agent,
            ip: &ip.to_string(),
            country: country.as_deref(),
            relay: &state.relay_key.holder(),
        })
        .await
    {
        warn!(error = %e, "could not record node");
    }
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (handle, others) = state.registry.insert_settled(
        NewNode {
            id: auth.id,
            public_key: auth.public_key,
            kind: auth.kind,
            ip,
            country: country.clone(),
            area: state.geo.area(ip),
            max_concurrency: auth.max_concurrency,
        },
        out_tx,
    );
    let earning = handle.earning.load(std::sync::atomic::Ordering::Acquire);
    info!(kind = auth.kind.as_str(), agent = %auth.agent, country = ?country,
          max_concurrency = auth.max_concurrency, earning, "node connected");
    if !earning {
        warn!(%ip, "another node on this IP address already earns: this one serves unpaid");
    }
    payouts::set_earning(state, &node_id, earning).await;
    payouts::send_terms(state, &handle).await;
    if let (true, Some(c)) = (earning, state.cluster.get()) {
        c.share_earning(vec![handle.claim()], Vec::new());
    }
    payouts::earning_changed(state, others).await;
    Some(Admitted {
        socket,
        handle,
        out_rx,
        node_id,
    })
}

/// After the reader ends: the registry, the writer's last frames, the
/// node's last-seen time.
async fn close(
    state: Arc<AppState>,
    handle: Arc<NodeHandle>,
    node_id: String,
    mut writer: tokio::task::JoinHandle<()>,
    why: String,
) {
    let why = if handle.dropped_slow() {
        state.metrics.node_dropped_slow();
        format!(
            "the node did not read what the relay sent (more than {} bytes queued)",
            handle.queue_bound()
        )
    } else {
        why
    };
    // The address's earning node left: the next one in line earns now.
    let changed = state.registry.remove(&handle);
    let replaced = state.registry.get(&handle.id).is_some();
    if let (false, true, Some(c)) = (
        replaced,
        handle.earning.load(std::sync::atomic::Ordering::Acquire),
        state.cluster.get(),
    ) {
        c.share_earning(Vec::new(), vec![handle.id.to_string()]);
    }
    payouts::earning_changed(&state, changed).await;
    if timeout(WRITER_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
    let still_online =
        state.registry.get(&handle.id).is_some() || state.registry.is_arriving(&handle.id);
    if let Err(e) = state
        .db
        .touch_node(&node_id, still_online, &state.relay_key.holder())
        .await
    {
        warn!(error = %e, "could not record node last seen");
    }
    info!(reason = %why, "node disconnected");
}

async fn writer(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    handle: Arc<NodeHandle>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    /// Why the writer stops before its queue closes.
    enum Stop {
        NodeGone,
        Shutdown,
    }
    let w = Writer {
        wrap: Message::Binary,
        ping: |nonce| RelayMessage::Ping { nonce }.encode(),
        taken: |len| handle.dequeued(len),
        ping_every: PING_INTERVAL,
    };
    // One cancellation future for the whole connection: `gone` is a child
    // of the relay's shutdown token. (A select over the two tokens, kept for
    // the connection's life, cost 0.5 KiB of relay memory per idle node.)
    let stop = async {
        handle.gone.cancelled().await;
        if shutdown.is_cancelled() {
            Stop::Shutdown
        } else {
            Stop::NodeGone
        }
    };
    let result: Result<(), axum::Error> = async {
        match w.run(&mut sink, &mut rx, stop).await? {
            Ended::QueueClosed => {}
            // Send what is queued (a refusal, cancels) before closing.
            Ended::Stopped(Stop::NodeGone) => w.drain(&mut sink, &mut rx).await?,
            Ended::Stopped(Stop::Shutdown) => {
                // What is queued (the last receipts) goes before the goodbye.
                w.drain(&mut sink, &mut rx).await?;
                let bye = RelayMessage::Refused {
                    code: RefuseCode::ShuttingDown,
                    message: "the relay is restarting; reconnect shortly".into(),
                };
                sink.feed(Message::Binary(bye.encode())).await?;
            }
        }
        sink.send(Message::Close(None)).await
    }
    .await;
    if let Err(e) = result {
        debug!(error = %e, "node writer ended");
    }
    handle.gone.cancel();
}

async fn reader(
    state: &AppState,
    handle: &Arc<NodeHandle>,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
) -> String {
    // A node is alive while it sends anything but its own pings: an idle
    // node answers the relay's ping every PING_INTERVAL. Its pings alone do
    // not count, so a node that pings and never reads is found dead.
    let mut alive_until = tokio::time::Instant::now() + DEAD_PEER_TIMEOUT;
    let mut ping_budget = NODE_PING_BURST;
    let mut budget_at = tokio::time::Instant::now();
    let mut state_log = StateLog::default();
    loop {
        let next = tokio::select! {
            _ = handle.gone.cancelled() => return "connection closed by the relay".into(),
            r = tokio::time::timeout_at(alive_until, stream.next()) => r,
        };
        let frame = match next {
            Err(_) => return format!("dead peer: no answer for {DEAD_PEER_TIMEOUT:?}"),
            Ok(None) => return "closed by the node".into(),
            Ok(Some(Err(e))) => return format!("connection error: {e}"),
            Ok(Some(Ok(Message::Binary(b)))) => b,
            Ok(Some(Ok(Message::Close(_)))) => return "closed by the node".into(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(_)))) => {
                return violation(handle, "text frames are not part of the protocol".into())
            }
        };
        let msg = match NodeMessage::decode(&frame) {
            Ok(m) => m,
            Err(e) => return violation(handle, format!("malformed frame: {e}")),
        };
        if let NodeMessage::Ping { .. } = msg {
            let now = tokio::time::Instant::now();
            ping_budget = (ping_budget
                + now.duration_since(budget_at).as_secs_f64() * NODE_PINGS_PER_SEC)
                .min(NODE_PING_BURST);
            budget_at = now;
            if ping_budget < 1.0 {
                return violation(
                    handle,
                    format!("more than {NODE_PING_BURST} pings at once or {NODE_PINGS_PER_SEC} a second"),
                );
            }
            ping_budget -= 1.0;
        } else {
            alive_until = tokio::time::Instant::now() + DEAD_PEER_TIMEOUT;
        }
        if let NodeMessage::SetPayout { address, signature } = &msg {
            payouts::set_payout(state, handle, address, signature).await;
            continue;
        }
        state_log.log(&msg, Instant::now());
        if let Err(why) = frames::apply(&state.metrics, handle, msg) {
            return violation(handle, why.to_string());
        }
    }
}

/// A node that breaks the protocol is told why and dropped; nothing else is
/// affected.
fn violation(handle: &NodeHandle, message: String) -> String {
    warn!(%message, "protocol violation, dropping node");
    handle.send(&RelayMessage::Refused {
        code: RefuseCode::ProtocolViolation,
        message: message.clone(),
    });
    format!("protocol violation: {message}")
}
