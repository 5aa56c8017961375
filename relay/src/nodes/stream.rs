//! One job's stream as the relay sees it: the events the node sends for it,
//! the response bytes buffered for the customer, the request-body credit the
//! node has granted, the request body pumped under that credit, and the
//! metered bytes each way (counted here, where the bytes pass).

use super::events::{LocalFailure, StreamEvent};
use super::handle::{NodeHandle, StreamSlot};
use bytes::Bytes;
use http_body_util::BodyExt;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{
    CREDIT_BATCH, MAX_CHUNK_BYTES, MAX_REQUEST_BODY_BYTES, STREAM_WINDOW,
};
use spareband_protocol::metering::{request_head_bytes, response_head_bytes};
use spareband_protocol::{CancelReason, RelayMessage, RequestHead, ResponseHead, StreamId};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A request body to pump to the node.
pub enum BodySource {
    /// In memory.
    Buffered(Bytes),
    /// Streamed from the customer.
    Streaming(axum::body::Body),
}

/// A stream opened on a node for one job. Dropping it before the node has
/// finished cancels the job on the node; dropping it always frees the node's
/// concurrency slot.
pub struct OpenStream {
    pub(crate) node: Arc<NodeHandle>,
    pub(crate) id: StreamId,
    pub(crate) events: mpsc::UnboundedReceiver<StreamEvent>,
    events_tx: mpsc::UnboundedSender<StreamEvent>,
    buffered: Arc<AtomicUsize>,
    credit: Arc<CreditGate>,
    /// Response bytes handed on since the last credit frame.
    unreturned: u32,
    /// Credit returned to the node so far (the gateway checks the node's
    /// sending against it).
    credited: Arc<AtomicU64>,
    finished: bool,
    /// Why to cancel if dropped unfinished.
    cancel_reason: CancelReason,
    pump: Option<tokio::task::JoinHandle<()>>,
    /// Metered bytes carried down so far (headers and body).
    down: u64,
    /// Metered bytes carried up so far, shared with the body pump.
    up: Arc<AtomicU64>,
}

impl OpenStream {
    /// Opens a stream on a slot reserved by [`super::Registry::pick`].
    pub fn open(node: &Arc<NodeHandle>) -> Self {
        let id = node.next_stream_id();
        let (stream, slot) = Self::new(node.clone(), id);
        node.lock_streams().insert(id, slot);
        stream
    }

    fn new(node: Arc<NodeHandle>, id: StreamId) -> (Self, StreamSlot) {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let credit = Arc::new(CreditGate::new(STREAM_WINDOW));
        let credited = Arc::new(AtomicU64::new(0));
        let slot = StreamSlot {
            events: tx.clone(),
            buffered: buffered.clone(),
            credit: credit.clone(),
            got_head: false,
            received: 0,
            credited: credited.clone(),
        };
        (
            OpenStream {
                node,
                id,
                events: rx,
                events_tx: tx,
                buffered,
                credit,
                unreturned: 0,
                credited,
                finished: false,
                cancel_reason: CancelReason::CustomerGone,
                pump: None,
                down: 0,
                up: Arc::new(AtomicU64::new(0)),
            },
            slot,
        )
    }

    /// The stream id on its node.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The node serving the stream.
    pub fn node(&self) -> &Arc<NodeHandle> {
        &self.node
    }

    /// Sends a frame for this stream to the node.
    pub fn send(&self, msg: &RelayMessage) -> bool {
        self.node.send(msg)
    }

    /// Marks the stream as finished by the node (no cancel on drop).
    pub fn set_finished(&mut self) {
        self.finished = true;
    }

    /// Why the node is told the job is cancelled if the stream is dropped
    /// unfinished (the customer went away, unless set otherwise).
    pub fn set_cancel_reason(&mut self, reason: CancelReason) {
        self.cancel_reason = reason;
    }

    /// Sends the job's request head, metered up.
    pub fn send_request(&mut self, head: RequestHead) {
        self.up.store(request_head_bytes(&head), Ordering::Relaxed);
        self.send(&RelayMessage::Request(head));
    }

    /// The response head arrived, metered down.
    pub fn head_arrived(&mut self, head: &ResponseHead) {
        self.down = response_head_bytes(head);
    }

    /// Metered bytes so far: (up, down).
    pub fn bytes(&self) -> (u64, u64) {
        (self.up.load(Ordering::Relaxed), self.down)
    }

    /// Stops sending the request body (the node answered before reading it
    /// all: the receipt then counts exactly what went).
    pub fn stop_pump(&mut self) {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
    }

    /// Streams the request body to the node under its credit, then the
    /// request's end. Failures reach the job through its event channel.
    pub fn pump(&mut self, body: BodySource) {
        let node = self.node.clone();
        let id = self.id;
        let credit = self.credit.clone();
        let events = self.events_tx.clone();
        let up = self.up.clone();
        self.pump = Some(tokio::spawn(async move {
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
                BodySource::Buffered(b) => {
                    if !send(b).await {
                        return;
                    }
                }
                BodySource::Streaming(mut body) => {
                    let mut total: u64 = 0;
                    loop {
                        match body.frame().await {
                            None => break,
                            Some(Ok(frame)) => {
                                let Ok(data) = frame.into_data() else {
                                    continue;
                                };
                                total += data.len() as u64;
                                if total > MAX_REQUEST_BODY_BYTES {
                                    let _ = events.send(StreamEvent::LocalError(
                                        LocalFailure::RequestTooLarge,
                                    ));
                                    return;
                                }
                                if !send(data).await {
                                    return;
                                }
                            }
                            Some(Err(_)) => {
                                let _ = events
                                    .send(StreamEvent::LocalError(LocalFailure::RequestUnreadable));
                                return;
                            }
                        }
                    }
                }
            }
            node.send(&RelayMessage::RequestEnd { stream: id });
        }));
    }

    /// Accounts for a body chunk handed on to the customer: it is metered
    /// down, leaves the relay's buffer, and credit flows back to the node in
    /// batches.
    pub fn consumed(&mut self, len: usize) {
        self.down += len as u64;
        self.buffered.fetch_sub(len, Ordering::AcqRel);
        self.unreturned += len as u32;
        if self.unreturned >= CREDIT_BATCH {
            let bytes = std::mem::take(&mut self.unreturned);
            // Count the credit before the node can use it.
            self.credited.fetch_add(bytes as u64, Ordering::AcqRel);
            self.send(&RelayMessage::Credit {
                stream: self.id,
                bytes,
            });
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
        if !self.finished {
            self.node.send(&RelayMessage::Cancel {
                stream: self.id,
                reason: self.cancel_reason,
            });
        }
        self.node.close_stream(self.id);
    }
}
