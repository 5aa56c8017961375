//! One connected, authenticated node as the relay holds it: its outbound
//! queue (bounded), its slots and availability, its owner's block list, its
//! open streams and its receipts waiting for a batch.

use super::events::StreamEvent;
use super::receipts::{Queued, ReceiptBatcher, RECEIPT_DELAY};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{MAX_STREAMS_PER_NODE, STREAM_WINDOW};
use spareband_protocol::{ClientKind, NodeId, Receipt, RelayMessage, StreamId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Queue room for frames that are not request bodies (credits, cancels,
/// pongs, receipts, rules): far more than a node that reads ever has queued.
pub const CONTROL_QUEUE_BYTES: usize = 1024 * 1024;

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

/// What the gateway knows about a node once it has authenticated.
pub struct NewNode {
    /// Id.
    pub id: NodeId,
    /// Public key.
    pub public_key: [u8; 32],
    /// Client kind.
    pub kind: ClientKind,
    /// Peer address.
    pub ip: IpAddr,
    /// GeoIP country.
    pub country: Option<String>,
    /// GeoIP city, region and network.
    pub area: crate::geo::Area,
    /// Announced concurrency.
    pub max_concurrency: u16,
}

/// One connected, authenticated node.
pub struct NodeHandle {
    /// The node's id.
    pub id: NodeId,
    /// The node's ed25519 public key.
    pub public_key: [u8; 32],
    /// Which connection of this node (a reconnect replaces the old one).
    pub conn: u64,
    /// Native node or extension.
    pub kind: ClientKind,
    /// Address the node connected from.
    pub ip: IpAddr,
    /// GeoIP country of `ip`.
    pub country: Option<String>,
    /// GeoIP city, region and network of `ip`.
    pub area: crate::geo::Area,
    out: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued for the writer and not yet taken (see
    /// [`NodeHandle::send`]).
    queued: AtomicUsize,
    pub(super) active: AtomicU32,
    max_concurrency: AtomicU32,
    accepting: AtomicBool,
    streams: Mutex<HashMap<StreamId, StreamSlot>>,
    next_stream: AtomicU32,
    /// Cancelled when the connection ends, or when the relay closes every
    /// node connection (a child of the registry's shutdown token).
    pub gone: CancellationToken,
    /// Whether this node's jobs earn (at most a set number of earning nodes
    /// per IP address; the others serve unpaid).
    pub earning: AtomicBool,
    /// When the node connected ([`super::earning::Claim::since_us`]); a
    /// reconnect keeps its first connection's time, and so its place.
    pub since_us: AtomicU64,
    /// Domains the node's owner does not share with.
    blocked: RwLock<Vec<String>>,
    /// Receipts waiting to be signed and sent as one batch.
    receipts: ReceiptBatcher,
    /// Whether `blocked` holds anything, so picks skip its lock when not.
    has_blocked: AtomicBool,
    /// This handle's index in the registry's list (kept under its lock).
    pub(super) slot: AtomicUsize,
    /// Set when the node was dropped for not reading.
    slow: AtomicBool,
    /// Woken when a slot frees or availability changes (the registry's).
    changed: Arc<Notify>,
}

impl NodeHandle {
    /// The handle of connection number `conn` of a node, whose frames go to
    /// `out`; `changed` is woken whenever its slots or availability change,
    /// and `gone` ends the connection.
    pub(super) fn new(
        n: NewNode,
        conn: u64,
        out: mpsc::UnboundedSender<Bytes>,
        changed: Arc<Notify>,
        gone: CancellationToken,
    ) -> Self {
        NodeHandle {
            id: n.id,
            public_key: n.public_key,
            conn,
            kind: n.kind,
            ip: n.ip,
            country: n.country,
            area: n.area,
            out,
            queued: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
            active: AtomicU32::new(0),
            max_concurrency: AtomicU32::new(n.max_concurrency.clamp(1, MAX_STREAMS_PER_NODE) as u32),
            accepting: AtomicBool::new(true),
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU32::new(0),
            gone,
            earning: AtomicBool::new(false),
            since_us: AtomicU64::new(super::earning::now_us()),
            blocked: RwLock::new(Vec::new()),
            receipts: ReceiptBatcher::default(),
            has_blocked: AtomicBool::new(false),
            slot: AtomicUsize::new(0),
            changed,
        }
    }
    /// This node as an earning claim for the other relays of a cluster.
    pub fn claim(&self) -> super::earning::Claim {
        super::earning::Claim {
            node: self.id.to_string(),
            group: crate::peer::AddrGroup::of(self.ip).addr(),
            since_us: self.since_us.load(Ordering::Relaxed),
        }
    }

    /// Queues a frame for the node's writer. False when the node is gone,
    /// or when the queue would pass [`NodeHandle::queue_bound`]: a node that
    /// does not read what it is sent is dropped rather than buffered for
    /// without end.
    pub fn send(&self, msg: &RelayMessage) -> bool {
        let frame = msg.encode();
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > self.queue_bound() {
            if !self.gone.is_cancelled() {
                tracing::warn!(node = %self.id, queued = self.queued.load(Ordering::Relaxed),
                               "the node does not read what the relay sends: dropped");
                self.slow.store(true, Ordering::Relaxed);
                self.gone.cancel();
            }
            return false;
        }
        self.out.send(frame).is_ok()
    }

    /// The writer took a frame of `len` bytes off the queue.
    pub(crate) fn dequeued(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
    }

    /// Most bytes queued for this node: every stream's full request-body
    /// window (the customer's bodies flow under the node's credit), plus
    /// [`CONTROL_QUEUE_BYTES`] for everything else.
    pub fn queue_bound(&self) -> usize {
        self.max_concurrency() as usize * STREAM_WINDOW as usize + CONTROL_QUEUE_BYTES
    }

    /// Whether the node was dropped for not reading.
    pub fn dropped_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }

    /// Queues a delivered job's receipt; the batch goes when full or
    /// [`RECEIPT_DELAY`] after its first receipt.
    pub fn add_receipt(self: &Arc<Self>, r: Receipt, key: &SigningKey) {
        match self.receipts.push(r) {
            Queued::Full(batch) => {
                self.send(&super::receipts::sign(key, &self.id, batch));
            }
            Queued::First => {
                let node = self.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RECEIPT_DELAY).await;
                    node.flush_receipts(&key);
                });
            }
            Queued::Waiting => {}
        }
    }

    /// Signs and sends the queued receipts, if any.
    pub fn flush_receipts(&self, key: &SigningKey) {
        if let Some(msg) = self.receipts.take_signed(key, &self.id) {
            self.send(&msg);
        }
    }

    /// Jobs running on the node now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// The concurrency the node announced (capped by the protocol limit).
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency.load(Ordering::Acquire)
    }

    /// Whether the node takes jobs.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire) && !self.gone.is_cancelled()
    }

    pub(crate) fn set_availability(&self, accepting: bool, max_concurrency: u16) {
        self.max_concurrency.store(
            max_concurrency.clamp(1, MAX_STREAMS_PER_NODE) as u32,
            Ordering::Release,
        );
        self.accepting.store(accepting, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Replaces the owner's block list.
    pub fn set_blocked(&self, domains: Vec<String>) {
        let mut list = self.blocked.write().unwrap_or_else(|e| e.into_inner());
        self.has_blocked
            .store(!domains.is_empty(), Ordering::Release);
        *list = domains;
    }

    /// Whether the owner blocks `host`.
    pub fn blocks(&self, host: &str) -> bool {
        if !self.has_blocked.load(Ordering::Acquire) {
            return false;
        }
        let list = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        !list.is_empty() && spareband_protocol::policy::covering_domain(&list, host).is_some()
    }

    pub(super) fn try_reserve(&self) -> bool {
        let max = self.max_concurrency();
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a < max && self.accepting()).then_some(a + 1)
            })
            .is_ok()
    }

    /// A fresh stream id: they start at 1 and only grow on a connection.
    pub(super) fn next_stream_id(&self) -> StreamId {
        self.next_stream.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub(crate) fn lock_streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, StreamSlot>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a stream id was ever opened on this connection.
    pub(crate) fn was_opened(&self, id: StreamId) -> bool {
        id != 0 && id <= self.next_stream.load(Ordering::Acquire)
    }

    /// Frees a stream's slot (called once per stream, when its job ends).
    pub(crate) fn close_stream(&self, id: StreamId) {
        self.lock_streams().remove(&id);
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Ends every stream: the node is gone, and each job hears so.
    pub(crate) fn drop_all_streams(&self) {
        for (_, slot) in self.lock_streams().drain() {
            let _ = slot.events.send(StreamEvent::NodeGone);
        }
    }
}
