//! One job's stream as the relay sees it: the events the node sends for it,
//! the response bytes buffered for the customer, and the request-body credit
//! the node has granted.

use super::registry::NodeHandle;
use bytes::Bytes;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{CREDIT_BATCH, STREAM_WINDOW};
use spareband_protocol::{CancelReason, FailReason, RelayMessage, ResponseHead, StreamId};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a node said about a stream (or what went wrong locally).
#[derive(Debug)]
pub enum StreamEvent {
    /// Status and headers.
    Head(ResponseHead),
    /// A body chunk.
    Body(Bytes),
    /// Body complete.
    End,
    /// The node gave up.
    Failed(FailReason, String),
    /// The node's connection ended.
    NodeGone,
    /// The relay gave up on the request side (for example the customer's
    /// request body was too large).
    LocalError(crate::jobs::JobError),
}

/// The reader side's record of a stream: where to deliver the node's frames.
pub(crate) struct StreamSlot {
    pub events: mpsc::UnboundedSender<StreamEvent>,
    pub buffered: Arc<AtomicUsize>,
    pub credit: Arc<CreditGate>,
    pub got_head: bool,
    /// Response-body bytes received from the node.
    pub received: u64,
    /// Response-body credit returned to the node so far.
    pub credited: Arc<AtomicU64>,
}

/// A stream opened on a node for one job. Dropping it before the node has
/// finished cancels the job on the node; dropping it always frees the node's
/// concurrency slot.
pub struct OpenStream {
    pub(crate) node: Arc<NodeHandle>,
    pub(crate) id: StreamId,
    pub(crate) events: mpsc::UnboundedReceiver<StreamEvent>,
    pub(crate) events_tx: mpsc::UnboundedSender<StreamEvent>,
    pub(crate) buffered: Arc<AtomicUsize>,
    pub(crate) credit: Arc<CreditGate>,
    /// Response bytes handed on since the last credit frame.
    unreturned: u32,
    /// Credit returned to the node so far (the gateway checks the node's
    /// sending against it).
    credited: Arc<AtomicU64>,
    finished: bool,
    /// Why to cancel if dropped unfinished.
    pub(crate) cancel_reason: CancelReason,
    pub(crate) pump: Option<tokio::task::JoinHandle<()>>,
    /// Metered bytes carried down so far (headers and body).
    pub(crate) down: u64,
    /// Metered bytes carried up so far, shared with the body pump.
    pub(crate) up: Arc<AtomicU64>,
}

impl OpenStream {
    pub(crate) fn new(node: Arc<NodeHandle>, id: StreamId) -> (Self, StreamSlot) {
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

    /// Accounts for a body chunk handed on to the customer: it leaves the
    /// relay's buffer, and credit flows back to the node in batches.
    pub fn consumed(&mut self, len: usize) {
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
