//! The registry of connected nodes, and routing: pick the least-loaded node
//! that is eligible for a job and reserve one of its slots atomically.

use super::stream::{OpenStream, StreamSlot};
use crate::metrics::Metrics;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use rand::Rng;
use spareband_protocol::limits::{MAX_RECEIPTS_PER_BATCH, MAX_STREAMS_PER_NODE, STREAM_WINDOW};

/// Queue room for frames that are not request bodies (credits, cancels,
/// pongs, receipts, rules): far more than a node that reads ever has queued.
pub const CONTROL_QUEUE_BYTES: usize = 1024 * 1024;
use spareband_protocol::rules::same_owner_network;
use spareband_protocol::{ClientKind, NodeId, Receipt, RelayMessage, StreamId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

/// Longest a delivered job's receipt waits to be signed with others.
pub const RECEIPT_DELAY: std::time::Duration = std::time::Duration::from_millis(100);
use tokio_util::sync::CancellationToken;

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
    out: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued for the writer and not yet taken (see
    /// [`NodeHandle::send`]).
    queued: AtomicUsize,
    active: AtomicU32,
    max_concurrency: AtomicU32,
    accepting: AtomicBool,
    streams: Mutex<HashMap<StreamId, StreamSlot>>,
    next_stream: AtomicU32,
    /// Cancelled when the connection ends.
    pub gone: CancellationToken,
    /// Whether this node's jobs earn (at most a set number of earning nodes
    /// per IP address; the others serve unpaid).
    pub earning: AtomicBool,
    /// Domains the node's owner does not share with.
    blocked: RwLock<Vec<String>>,
    /// Receipts waiting to be signed and sent as one batch.
    receipts: Mutex<Vec<Receipt>>,
    /// Whether `blocked` holds anything, so picks skip its lock when not.
    has_blocked: AtomicBool,
    /// This handle's index in the registry's list (kept under its lock).
    slot: AtomicUsize,
    /// Set when the node was dropped for not reading.
    slow: AtomicBool,
    registry: Arc<RegistryInner>,
}

impl NodeHandle {
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

    /// Queues a delivered job's receipt. The first receipt of a batch
    /// starts a timer that sends the batch [`RECEIPT_DELAY`] later; a full
    /// batch goes at once. Signing one batch instead of every receipt keeps
    /// the relay's and the node's signature work off the per-job path.
    pub fn add_receipt(self: &Arc<Self>, r: Receipt, key: &SigningKey) {
        let (first, full) = {
            let mut q = self.receipts.lock().unwrap_or_else(|e| e.into_inner());
            q.push(r);
            (q.len() == 1, q.len() >= MAX_RECEIPTS_PER_BATCH)
        };
        if full {
            self.flush_receipts(key);
        } else if first {
            let node = self.clone();
            let key = key.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RECEIPT_DELAY).await;
                node.flush_receipts(&key);
            });
        }
    }

    /// Signs and sends the queued receipts, if any.
    pub fn flush_receipts(&self, key: &SigningKey) {
        let batch = std::mem::take(&mut *self.receipts.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            self.send(&RelayMessage::Receipts(
                spareband_protocol::identity::sign_receipts(key, &self.id, batch),
            ));
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
        self.registry.changed.notify_waiters();
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

    fn try_reserve(&self) -> bool {
        let max = self.max_concurrency();
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (a < max && self.accepting()).then_some(a + 1)
            })
            .is_ok()
    }

    /// Opens a stream on a slot reserved by [`Registry::pick`].
    pub fn open_stream(self: &Arc<Self>) -> OpenStream {
        // Stream ids start at 1 and only grow on a connection.
        let id = self.next_stream.fetch_add(1, Ordering::AcqRel) + 1;
        let (stream, slot) = OpenStream::new(self.clone(), id);
        self.lock_streams().insert(id, slot);
        stream
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
        self.registry.changed.notify_waiters();
    }

    /// Ends every stream: the node is gone, and each job hears so.
    pub(crate) fn drop_all_streams(&self) {
        for (_, slot) in self.lock_streams().drain() {
            let _ = slot.events.send(super::StreamEvent::NodeGone);
        }
    }
}

/// Whether two nodes count as one address for `earning_nodes_per_ip`.
fn same_group(a: IpAddr, b: IpAddr) -> bool {
    crate::peer::AddrGroup::of(a) == crate::peer::AddrGroup::of(b)
}

/// Per node: (minute, requests in it).
type NodeCounts = HashMap<NodeId, (u64, u32)>;

/// Requests each node may send to one site per minute, so customers cannot
/// get a home IP banned by hammering one site through it. Fixed one-minute
/// windows, keyed by node id so a reconnect does not reset them.
pub struct SiteCaps {
    per_minute: u32,
    /// site → node → count in the current minute.
    counts: Mutex<HashMap<String, NodeCounts>>,
}

fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl SiteCaps {
    /// `per_minute` requests per node per site; 0 switches the cap off.
    pub fn new(per_minute: u32) -> Self {
        SiteCaps {
            per_minute,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The cap.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// The nodes that have reached the cap for `site` this minute: one lock
    /// per pick, not one per node.
    fn capped_nodes(&self, site: &str) -> std::collections::HashSet<NodeId> {
        if self.per_minute == 0 {
            return Default::default();
        }
        let now = minute_now();
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(site).map_or_else(Default::default, |nodes| {
            nodes
                .iter()
                .filter(|(_, (m, c))| *m == now && *c >= self.per_minute)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    #[cfg(test)]
    fn capped(&self, node: &NodeId, site: &str) -> bool {
        self.capped_nodes(site).contains(node)
    }

    fn count(&self, node: &NodeId, site: &str) {
        if self.per_minute == 0 {
            return;
        }
        let now = minute_now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= 100_000 {
            counts.retain(|_, nodes| nodes.values().any(|(m, _)| *m == now));
        }
        let nodes = match counts.get_mut(site) {
            Some(n) => n,
            None => counts.entry(site.to_string()).or_default(),
        };
        let e = nodes.entry(*node).or_insert((now, 0));
        if e.0 != now {
            *e = (now, 0);
        }
        e.1 += 1;
    }

    /// Time until the current window ends.
    pub fn retry_after(&self) -> std::time::Duration {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::time::Duration::from_secs(60 - secs % 60)
    }
}

/// What routing may choose from.
#[derive(Debug, Default, Clone)]
pub struct Pick<'a> {
    /// The job's site (see [`spareband_protocol::rules::site_of`]), for the per-node site cap.
    pub site: Option<&'a str>,
    /// The job's host: nodes whose owner blocks it are not eligible.
    pub host: Option<&'a str>,
    /// Only nodes in this country (ISO code, upper case).
    pub country: Option<&'a str>,
    /// Not these nodes (already tried for this job).
    pub exclude: &'a [NodeId],
    /// Only this node (a sticky session).
    pub only: Option<NodeId>,
    /// Whether browser nodes may take the job (see
    /// [`spareband_protocol::Target::fits_browser`]); native nodes always may.
    pub browser_ok: bool,
    /// The target's known addresses: a node whose own network holds one
    /// (its public IPv4, its IPv6 /56) is not eligible, so no customer
    /// reaches an owner's router or home through the owner's own node.
    pub target_addrs: &'a [IpAddr],
}

/// The outcome of a pick.
pub enum PickResult {
    /// A node with a slot reserved for the job.
    Reserved(Arc<NodeHandle>),
    /// Eligible nodes exist but all are at their concurrency.
    Busy,
    /// No connected node is eligible at all.
    NoCandidate,
    /// Eligible nodes exist, but each has reached its cap for the job's site.
    SiteCapped,
}

pub(crate) struct RegistryInner {
    changed: Notify,
}

/// Eligible nodes with a free slot that one pick compares before it takes
/// the least loaded of them ("power of d choices"): a full scan made each
/// pick cost about a millisecond at 10,000 nodes (docs/BENCHMARKS.md).
pub const PICK_SAMPLE: usize = 16;

/// The connected nodes, by id and in a list picks can start anywhere in.
#[derive(Default)]
struct Nodes {
    by_id: HashMap<NodeId, Arc<NodeHandle>>,
    list: Vec<Arc<NodeHandle>>,
}

/// All connected nodes.
pub struct Registry {
    nodes: RwLock<Nodes>,
    inner: Arc<RegistryInner>,
    next_conn: AtomicU32,
    metrics: Arc<Metrics>,
    /// Per-node, per-site request caps.
    pub caps: SiteCaps,
    /// Earning nodes allowed per address group (an IPv4 address or an IPv6
    /// /64; 0: any number).
    pub earning_per_ip: u32,
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
    /// Announced concurrency.
    pub max_concurrency: u16,
}

impl Registry {
    /// An empty registry.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Registry {
            nodes: RwLock::new(Nodes::default()),
            inner: Arc::new(RegistryInner {
                changed: Notify::new(),
            }),
            next_conn: AtomicU32::new(0),
            metrics,
            caps: SiteCaps::new(0),
            earning_per_ip: 0,
        }
    }

    /// A registry whose nodes each send at most `per_minute` requests a
    /// minute to one site (0: no cap), with at most `earning_per_ip` earning
    /// nodes per IP address (0: any number).
    pub fn with_limits(metrics: Arc<Metrics>, per_minute: u32, earning_per_ip: u32) -> Self {
        Registry {
            caps: SiteCaps::new(per_minute),
            earning_per_ip,
            ..Registry::new(metrics)
        }
    }

    /// Adds a node. A node id connects once: an older connection of the same
    /// node is closed (its jobs fail) and replaced.
    pub fn insert(&self, n: NewNode, out: mpsc::UnboundedSender<Bytes>) -> Arc<NodeHandle> {
        let handle = Arc::new(NodeHandle {
            id: n.id,
            public_key: n.public_key,
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed) as u64,
            kind: n.kind,
            ip: n.ip,
            country: n.country,
            out,
            queued: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
            active: AtomicU32::new(0),
            max_concurrency: AtomicU32::new(n.max_concurrency.clamp(1, MAX_STREAMS_PER_NODE) as u32),
            accepting: AtomicBool::new(true),
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU32::new(0),
            gone: CancellationToken::new(),
            earning: AtomicBool::new(false),
            blocked: RwLock::new(Vec::new()),
            receipts: Mutex::new(Vec::new()),
            has_blocked: AtomicBool::new(false),
            slot: AtomicUsize::new(0),
            registry: self.inner.clone(),
        });
        let old = {
            let mut guard = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let Nodes { by_id: nodes, list } = &mut *guard;
            let old = nodes.insert(n.id, handle.clone());
            match &old {
                // A reconnect takes the old connection's place in the list.
                Some(o) => {
                    let i = o.slot.load(Ordering::Relaxed);
                    handle.slot.store(i, Ordering::Relaxed);
                    list[i] = handle.clone();
                }
                None => {
                    handle.slot.store(list.len(), Ordering::Relaxed);
                    list.push(handle.clone());
                }
            }
            // The same node reconnecting keeps its place; otherwise it earns
            // only if its address has room.
            let earns = old
                .as_ref()
                .is_some_and(|o| o.earning.load(Ordering::Acquire))
                || self.earning_per_ip == 0
                || nodes
                    .values()
                    .filter(|x| {
                        same_group(x.ip, n.ip) && x.id != n.id && x.earning.load(Ordering::Acquire)
                    })
                    .count()
                    < self.earning_per_ip as usize;
            handle.earning.store(earns, Ordering::Release);
            old
        };
        if let Some(old) = old {
            old.gone.cancel();
        }
        self.metrics.set_nodes(self.len());
        self.inner.changed.notify_waiters();
        handle
    }

    /// Removes a node's connection (if it is still the current one).
    /// Removes a node's connection (if it is still the current one). When it
    /// was earning, the longest-connected unpaid node on its address takes
    /// its place and is returned, so the caller can tell it.
    pub fn remove(&self, handle: &NodeHandle) -> Option<Arc<NodeHandle>> {
        handle.gone.cancel();
        let promoted = {
            let mut guard = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let Nodes { by_id: nodes, list } = &mut *guard;
            if nodes.get(&handle.id).is_some_and(|h| h.conn == handle.conn) {
                nodes.remove(&handle.id);
                let i = handle.slot.load(Ordering::Relaxed);
                list.swap_remove(i);
                if let Some(moved) = list.get(i) {
                    moved.slot.store(i, Ordering::Relaxed);
                }
                if handle.earning.load(Ordering::Acquire) {
                    nodes
                        .values()
                        .filter(|x| {
                            same_group(x.ip, handle.ip) && !x.earning.load(Ordering::Acquire)
                        })
                        .min_by_key(|x| x.conn)
                        .inspect(|x| x.earning.store(true, Ordering::Release))
                        .cloned()
                } else {
                    None
                }
            } else {
                None
            }
        };
        handle.drop_all_streams();
        self.metrics.set_nodes(self.len());
        self.inner.changed.notify_waiters();
        promoted
    }

    /// Connected nodes.
    pub fn len(&self) -> usize {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .len()
    }

    /// Whether no node is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A connected node by id.
    pub fn get(&self, id: &NodeId) -> Option<Arc<NodeHandle>> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(id)
            .cloned()
    }

    /// Snapshot of all connected nodes.
    pub fn all(&self) -> Vec<Arc<NodeHandle>> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clone()
    }

    /// A future that completes when a node joins, leaves, changes
    /// availability or frees a slot. Create it before [`Registry::pick`] so no
    /// change between the two is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// Picks a node and reserves a slot on it: from a random place in the
    /// list, the first idle eligible node, or else the least loaded of the
    /// first [`PICK_SAMPLE`] eligible nodes with a free slot (ties broken at
    /// random). Ineligible nodes are skipped, so a rare country is still
    /// found, at the cost of a longer walk.
    pub fn pick(&self, p: &Pick<'_>) -> PickResult {
        let guard = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        // A sticky session names its node: no walk at all.
        let pinned;
        let nodes: &[Arc<NodeHandle>] = match p.only {
            Some(id) => {
                pinned = guard.by_id.get(&id).cloned();
                pinned.as_slice()
            }
            None => &guard.list,
        };
        let eligible = |n: &NodeHandle| {
            n.accepting()
                && !p.exclude.contains(&n.id)
                && p.only.is_none_or(|id| id == n.id)
                && p.country.is_none_or(|c| n.country.as_deref() == Some(c))
                && p.host.is_none_or(|h| !n.blocks(h))
                && (p.browser_ok || n.kind == ClientKind::Native)
                && !p.target_addrs.iter().any(|a| same_owner_network(n.ip, *a))
        };
        let capped_here = p
            .site
            .map(|site| self.caps.capped_nodes(site))
            .unwrap_or_default();
        // A few passes: a reservation can lose a race with another pick.
        for _ in 0..4 {
            let mut best: Option<(&Arc<NodeHandle>, u64)> = None;
            let mut ties = 0u32;
            let mut any = false;
            let mut capped = false;
            let mut rng = rand::thread_rng();
            let mut sampled = 0;
            let start = if nodes.is_empty() {
                0
            } else {
                rng.gen_range(0..nodes.len())
            };
            let walk = nodes[start..].iter().chain(&nodes[..start]);
            for n in walk.filter(|n| eligible(n)) {
                if capped_here.contains(&n.id) {
                    capped = true;
                    continue;
                }
                any = true;
                let (a, m) = (n.active() as u64, n.max_concurrency() as u64);
                if a >= m {
                    continue;
                }
                if a == 0 {
                    // Idle: nothing can be less loaded.
                    best = Some((n, 0));
                    break;
                }
                sampled += 1;
                // Load as a fraction of capacity, scaled to stay integral.
                let load = a * 1_000_000 / m.max(1);
                match best {
                    Some((_, l)) if load > l => {}
                    Some((_, l)) if load == l => {
                        ties += 1;
                        if rng.gen_range(0..=ties) == 0 {
                            best = Some((n, load));
                        }
                    }
                    _ => {
                        best = Some((n, load));
                        ties = 0;
                    }
                }
                if sampled >= PICK_SAMPLE {
                    break;
                }
            }
            match best {
                Some((n, _)) if n.try_reserve() => {
                    if let Some(site) = p.site {
                        self.caps.count(&n.id, site);
                    }
                    return PickResult::Reserved(n.clone());
                }
                Some(_) => continue,
                None if any => return PickResult::Busy,
                None if capped => return PickResult::SiteCapped,
                None => return PickResult::NoCandidate,
            }
        }
        PickResult::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_capped_per_site_per_minute() {
        let caps = SiteCaps::new(2);
        let node = NodeId([1; 16]);
        assert!(!caps.capped(&node, "example.com"));
        caps.count(&node, "example.com");
        caps.count(&node, "example.com");
        assert!(caps.capped(&node, "example.com"));
        assert!(!caps.capped(&node, "example.org"));
        assert!(!caps.capped(&NodeId([2; 16]), "example.com"));
        assert!(caps.retry_after() <= std::time::Duration::from_secs(60));
        let off = SiteCaps::new(0);
        off.count(&node, "x.com");
        assert!(!off.capped(&node, "x.com"));
    }

    fn node(r: &Registry, id: u8, country: Option<&str>) -> Arc<NodeHandle> {
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is dropped: sends to these nodes are not read here.
        drop(rx);
        r.insert(
            NewNode {
                id: NodeId([id; 16]),
                public_key: [id; 32],
                kind: ClientKind::Native,
                ip: IpAddr::from([10, 0, 0, id]),
                country: country.map(String::from),
                max_concurrency: 4,
            },
            tx,
        )
    }

    fn reserved(r: PickResult) -> Arc<NodeHandle> {
        match r {
            PickResult::Reserved(n) => n,
            _ => panic!("no node reserved"),
        }
    }

    #[test]
    fn removals_and_reconnects_keep_the_list_and_the_index_in_step() {
        let r = Registry::new(Arc::new(Metrics::default()));
        let handles: Vec<_> = (1..=5).map(|i| node(&r, i, None)).collect();
        r.remove(&handles[1]);
        r.remove(&handles[4]);
        // Node 3 reconnects: the new connection takes the old one's place.
        let again = node(&r, 3, None);
        assert!(handles[2].gone.is_cancelled());
        r.remove(&handles[2]); // the old connection's late cleanup: no effect
        let mut ids: Vec<u8> = r.all().iter().map(|n| n.id.0[0]).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3, 4]);
        assert_eq!(r.len(), 3);
        assert!(Arc::ptr_eq(&r.get(&NodeId([3; 16])).unwrap(), &again));
        // Every remaining node is reachable by a pick (4 slots each).
        let mut picked = std::collections::HashSet::new();
        for _ in 0..12 {
            picked.insert(reserved(r.pick(&Pick::default())).id.0[0]);
        }
        assert_eq!(picked.len(), 3);
        assert!(matches!(r.pick(&Pick::default()), PickResult::Busy));
        // After more churn the list still matches the index.
        r.remove(&handles[0]);
        r.remove(&again);
        let left = r.all();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, NodeId([4; 16]));
        assert_eq!(left[0].slot.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn picks_take_idle_nodes_first_and_still_find_a_rare_country() {
        let r = Registry::new(Arc::new(Metrics::default()));
        let nodes: Vec<_> = (1..=200)
            .map(|i| node(&r, i, Some(if i == 137 { "NZ" } else { "US" })))
            .collect();
        // Nodes 1 to 10 carry a job each, the rest are idle: fewer loaded
        // nodes than a sample holds, so every pick lands on an idle node.
        for n in &nodes[..10] {
            assert!(n.try_reserve());
        }
        for _ in 0..50 {
            let n = reserved(r.pick(&Pick::default()));
            assert!(n.id.0[0] > 10, "picked loaded node {}", n.id.0[0]);
            assert_eq!(n.active(), 1);
            n.active.fetch_sub(1, Ordering::AcqRel);
        }
        // One node in NZ among 200: found wherever the walk starts.
        for _ in 0..20 {
            let n = reserved(r.pick(&Pick {
                country: Some("NZ"),
                ..Pick::default()
            }));
            assert_eq!(n.id.0[0], 137);
            n.active.fetch_sub(1, Ordering::AcqRel);
        }
        assert!(matches!(
            r.pick(&Pick {
                country: Some("FR"),
                ..Pick::default()
            }),
            PickResult::NoCandidate
        ));
        // A sticky session goes straight to its node.
        let n = reserved(r.pick(&Pick {
            only: Some(NodeId([7; 16])),
            ..Pick::default()
        }));
        assert_eq!(n.id, NodeId([7; 16]));
    }

    /// Checked once: without the bound in `NodeHandle::send`, every frame
    /// was queued and the node stayed.
    #[test]
    fn a_node_that_does_not_read_is_dropped_at_its_queue_bound() {
        let r = Registry::new(Arc::new(Metrics::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let n = r.insert(
            NewNode {
                id: NodeId([3; 16]),
                public_key: [3; 32],
                kind: ClientKind::Native,
                ip: IpAddr::from([81, 2, 69, 142]),
                country: None,
                max_concurrency: 2,
            },
            tx,
        );
        let bound = n.queue_bound();
        assert_eq!(bound, 2 * STREAM_WINDOW as usize + CONTROL_QUEUE_BYTES);
        let chunk = RelayMessage::RequestBody {
            stream: 1,
            data: Bytes::from(vec![0u8; 64 * 1024]),
        };
        let mut queued = 0;
        for _ in 0..10_000 {
            if !n.send(&chunk) {
                break;
            }
            queued += 1;
        }
        assert!(n.gone.is_cancelled() && n.dropped_slow());
        assert!(queued * 64 * 1024 <= bound, "{queued} frames queued");
        // A writer that takes frames gives their room back.
        let taken = rx.try_recv().unwrap();
        n.dequeued(taken.len());
    }

    /// Fails with either of the two conditions removed from `eligible`.
    #[test]
    fn browser_nodes_get_only_browser_jobs_and_no_node_gets_its_own_address() {
        let r = Registry::new(Arc::new(Metrics::default()));
        let (tx, _rx) = mpsc::unbounded_channel();
        let browser = r.insert(
            NewNode {
                id: NodeId([1; 16]),
                public_key: [1; 32],
                kind: ClientKind::Extension,
                ip: "2001:db8:aa:bb01::5".parse().unwrap(),
                country: None,
                max_concurrency: 4,
            },
            tx,
        );
        assert!(matches!(r.pick(&Pick::default()), PickResult::NoCandidate));
        let any = Pick {
            browser_ok: true,
            ..Pick::default()
        };
        let n = reserved(r.pick(&any));
        assert!(Arc::ptr_eq(&n, &browser));
        n.active.fetch_sub(1, Ordering::AcqRel);
        // A device elsewhere in the same home's /56.
        let home: [IpAddr; 1] = ["2001:db8:aa:bbee::1".parse().unwrap()];
        let own = Pick {
            target_addrs: &home,
            ..any.clone()
        };
        assert!(matches!(r.pick(&own), PickResult::NoCandidate));
        // A native node elsewhere takes it.
        let other = node(&r, 9, None);
        assert!(Arc::ptr_eq(&reserved(r.pick(&own)), &other));
    }
}
