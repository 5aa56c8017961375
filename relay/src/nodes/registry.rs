//! The registry of connected nodes, and routing: pick the least-loaded node
//! that is eligible for a job and reserve one of its slots atomically.

pub use super::caps::SiteCaps;
use super::earning::{self, Claim, Claims};
pub use super::handle::{NewNode, NodeHandle};
use crate::metrics::Metrics;
use crate::peer::AddrGroup;
use bytes::Bytes;
use rand::Rng;
use spareband_protocol::rules::same_owner_network;
use spareband_protocol::{ClientKind, NodeId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// What routing may choose from.
#[derive(Debug, Default, Clone)]
pub struct Pick<'a> {
    /// The job's site (see [`spareband_protocol::rules::site_of`]), for the per-node site cap.
    pub site: Option<&'a str>,
    /// The job's host: nodes whose owner blocks it are not eligible.
    pub host: Option<&'a str>,
    /// Only nodes in this country (ISO code, upper case).
    pub country: Option<&'a str>,
    /// Only nodes in this city, region and network (each when given).
    pub area: Option<&'a crate::geo::Area>,
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

/// Eligible nodes with a free slot that one pick compares before it takes
/// the least loaded of them ("power of d choices"): a full scan made each
/// pick cost about a millisecond at 10,000 nodes (docs/BENCHMARKS.md).
pub const PICK_SAMPLE: usize = 16;

/// The connected nodes, by id, by address group (for the earning rule),
/// and in a list picks can start anywhere in.
#[derive(Default)]
struct Nodes {
    by_id: HashMap<NodeId, Arc<NodeHandle>>,
    by_group: HashMap<AddrGroup, Vec<Arc<NodeHandle>>>,
    list: Vec<Arc<NodeHandle>>,
}

impl Nodes {
    /// Ranks `group`'s nodes here against other relays' earning `claims`
    /// and sets whether each earns; returns those whose earning changed.
    /// Called with the registry's lock held and `claims` locked, so two
    /// rankings of one group never interleave.
    fn settle(&self, group: AddrGroup, claims: &Claims, per_group: u32) -> Vec<Arc<NodeHandle>> {
        let here = self
            .by_group
            .get(&group)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let local: Vec<_> = here
            .iter()
            .map(|n| (n.since_us.load(Ordering::Relaxed), n.id))
            .collect();
        let remote = if per_group == 0 {
            Vec::new()
        } else {
            claims.ranks_in(group, |id| self.by_id.contains_key(id))
        };
        let win = earning::winners(&local, &remote, per_group);
        here.iter()
            .filter(|n| {
                let earns = win.contains(&n.id);
                n.earning.swap(earns, Ordering::AcqRel) != earns
            })
            .cloned()
            .collect()
    }
}

/// All connected nodes.
pub struct Registry {
    nodes: RwLock<Nodes>,
    /// Woken when a node joins, leaves, changes availability or frees a slot.
    changed: Arc<Notify>,
    next_conn: AtomicU32,
    metrics: Arc<Metrics>,
    /// Per-node, per-site request caps.
    pub caps: SiteCaps,
    /// Earning nodes allowed per address group (an IPv4 address or an IPv6
    /// /64; 0: any number).
    pub earning_per_ip: u32,
    /// Other relays' earning nodes (see [`earning`]). Locked after `nodes`.
    claims: Mutex<Claims>,
    /// Connections past their handshake and not yet inserted, per node.
    arriving: Arc<Mutex<HashMap<NodeId, u32>>>,
    /// Cancelled when the relay closes its node connections: every node's
    /// `gone` token is a child of it, so one future per connection sees both
    /// (see the writer in `gateway.rs`).
    shutdown: CancellationToken,
}

/// Whether node `n` may take a job picked with `p` (busy or not).
fn eligible(p: &Pick<'_>, n: &NodeHandle) -> bool {
    n.accepting()
        && !p.exclude.contains(&n.id)
        && p.only.is_none_or(|id| id == n.id)
        && p.country.is_none_or(|c| n.country.as_deref() == Some(c))
        && p.area.is_none_or(|a| in_area(&n.area, a))
        && p.host.is_none_or(|h| !n.blocks(h))
        && (p.browser_ok || n.kind == ClientKind::Native)
        && !p.target_addrs.iter().any(|a| same_owner_network(n.ip, *a))
}

/// Whether a node's area matches every part of `want` that is given.
fn in_area(node: &crate::geo::Area, want: &crate::geo::Area) -> bool {
    want.city
        .as_ref()
        .is_none_or(|c| node.city.as_ref() == Some(c))
        && want
            .region
            .as_ref()
            .is_none_or(|r| node.region.as_ref() == Some(r))
        && want.asn.is_none_or(|a| node.asn == Some(a))
}

/// A connection on its way in ([`Registry::arriving`]).
pub struct Arriving {
    id: NodeId,
    table: Arc<Mutex<HashMap<NodeId, u32>>>,
}

impl Drop for Arriving {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.id);
            }
        }
    }
}

/// Takes `n` out of its address group's list.
fn unlink(by_group: &mut HashMap<AddrGroup, Vec<Arc<NodeHandle>>>, n: &NodeHandle) {
    let group = AddrGroup::of(n.ip);
    if let Some(v) = by_group.get_mut(&group) {
        v.retain(|x| x.conn != n.conn);
        if v.is_empty() {
            by_group.remove(&group);
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Registry {
            nodes: RwLock::new(Nodes::default()),
            changed: Arc::new(Notify::new()),
            next_conn: AtomicU32::new(0),
            metrics,
            caps: SiteCaps::new(0),
            earning_per_ip: 0,
            claims: Mutex::new(Claims::default()),
            arriving: Arc::new(Mutex::new(HashMap::new())),
            shutdown: CancellationToken::new(),
        }
    }

    /// The same registry, its nodes' connections ended when `shutdown` is
    /// cancelled.
    pub fn with_shutdown(self, shutdown: CancellationToken) -> Self {
        Registry { shutdown, ..self }
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
        self.insert_settled(n, out).0
    }

    /// [`Registry::insert`], also returning the other nodes whose earning
    /// changed (none, unless a clock went back).
    pub fn insert_settled(
        &self,
        n: NewNode,
        out: mpsc::UnboundedSender<Bytes>,
    ) -> (Arc<NodeHandle>, Vec<Arc<NodeHandle>>) {
        let handle = Arc::new(NodeHandle::new(
            n,
            self.next_conn.fetch_add(1, Ordering::Relaxed) as u64,
            out,
            self.changed.clone(),
            self.shutdown.child_token(),
        ));
        let group = AddrGroup::of(handle.ip);
        let (old, mut changed) = {
            let mut guard = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let nodes = &mut *guard;
            let old = nodes.by_id.insert(handle.id, handle.clone());
            match &old {
                // A reconnect takes the old connection's place in the list,
                // and its place in its address's queue.
                Some(o) => {
                    let i = o.slot.load(Ordering::Relaxed);
                    handle.slot.store(i, Ordering::Relaxed);
                    nodes.list[i] = handle.clone();
                    handle
                        .since_us
                        .store(o.since_us.load(Ordering::Relaxed), Ordering::Relaxed);
                    unlink(&mut nodes.by_group, o);
                }
                None => {
                    handle.slot.store(nodes.list.len(), Ordering::Relaxed);
                    nodes.list.push(handle.clone());
                }
            }
            nodes
                .by_group
                .entry(group)
                .or_default()
                .push(handle.clone());
            let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            (old, nodes.settle(group, &claims, self.earning_per_ip))
        };
        if let Some(old) = old {
            old.gone.cancel();
        }
        self.metrics.set_nodes(self.len());
        self.changed.notify_waiters();
        changed.retain(|n| !Arc::ptr_eq(n, &handle));
        (handle, changed)
    }

    /// Removes a node's connection (if it is still the current one). When it
    /// was earning, the longest-connected unpaid node on its address (here)
    /// takes its place; returns the nodes whose earning changed, so the
    /// caller can tell them.
    pub fn remove(&self, handle: &NodeHandle) -> Vec<Arc<NodeHandle>> {
        handle.gone.cancel();
        let changed = {
            let mut guard = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            let nodes = &mut *guard;
            if nodes
                .by_id
                .get(&handle.id)
                .is_some_and(|h| h.conn == handle.conn)
            {
                nodes.by_id.remove(&handle.id);
                let i = handle.slot.load(Ordering::Relaxed);
                nodes.list.swap_remove(i);
                if let Some(moved) = nodes.list.get(i) {
                    moved.slot.store(i, Ordering::Relaxed);
                }
                unlink(&mut nodes.by_group, handle);
                let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
                nodes.settle(AddrGroup::of(handle.ip), &claims, self.earning_per_ip)
            } else {
                Vec::new()
            }
        };
        handle.drop_all_streams();
        self.metrics.set_nodes(self.len());
        self.changed.notify_waiters();
        changed
    }

    /// Takes another relay's earning claims and releases (see [`earning`]);
    /// returns this relay's nodes whose earning changed.
    pub fn hear_claims(
        &self,
        relay: &str,
        claims: &[Claim],
        released: &[String],
    ) -> Vec<Arc<NodeHandle>> {
        self.resettle(|c| c.hear(relay, claims, released))
    }

    /// Forgets a gone relay's claims; returns this relay's nodes whose
    /// earning changed.
    pub fn forget_claims_of(&self, relay: &str) -> Vec<Arc<NodeHandle>> {
        self.resettle(|c| c.forget_relay(relay))
    }

    /// Drops claims not heard again in time; returns this relay's nodes
    /// whose earning changed.
    pub fn expire_claims(&self) -> Vec<Arc<NodeHandle>> {
        self.resettle(Claims::expire)
    }

    fn resettle(&self, change: impl FnOnce(&mut Claims) -> Vec<AddrGroup>) -> Vec<Arc<NodeHandle>> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        let groups = change(&mut claims);
        groups
            .into_iter()
            .flat_map(|g| nodes.settle(g, &claims, self.earning_per_ip))
            .collect()
    }

    /// Marks a connection of `id` as on its way in, until the guard drops.
    pub fn arriving(&self, id: NodeId) -> Arriving {
        *self
            .arriving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
        Arriving {
            id,
            table: self.arriving.clone(),
        }
    }

    /// Whether a connection of `id` is on its way in.
    pub fn is_arriving(&self, id: &NodeId) -> bool {
        self.arriving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// Whether any connected node may take a job picked with `p`, busy or
    /// not; reserves nothing (to tell which filter found no node).
    pub fn any_eligible(&self, p: &Pick<'_>) -> bool {
        let guard = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        guard.list.iter().any(|n| eligible(p, n))
    }

    /// This relay's earning nodes, as claims for the other relays (none
    /// when any number may earn).
    pub fn claims(&self) -> Vec<Claim> {
        if self.earning_per_ip == 0 {
            return Vec::new();
        }
        self.all()
            .iter()
            .filter(|n| n.earning.load(Ordering::Acquire))
            .map(|n| n.claim())
            .collect()
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
        self.changed.notified()
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
        let eligible = |n: &NodeHandle| eligible(p, n);
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
    use crate::nodes::handle::CONTROL_QUEUE_BYTES;
    use spareband_protocol::limits::STREAM_WINDOW;
    use spareband_protocol::RelayMessage;

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
                area: Default::default(),
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
                area: Default::default(),
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
                area: Default::default(),
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

    fn on_one_address(r: &Registry, id: u8) -> Arc<NodeHandle> {
        let (tx, _rx) = mpsc::unbounded_channel();
        r.insert(
            NewNode {
                id: NodeId([id; 16]),
                public_key: [id; 32],
                kind: ClientKind::Native,
                ip: IpAddr::from([81, 2, 69, 142]),
                country: None,
                area: Default::default(),
                max_concurrency: 4,
            },
            tx,
        )
    }

    fn earns(n: &NodeHandle) -> bool {
        n.earning.load(Ordering::Acquire)
    }

    /// The earning rule over a cluster, as one relay sees it. With the
    /// claims left out of the ranking (`remote` empty in `Nodes::settle`)
    /// the first two assertions fail: checked once.
    #[test]
    fn another_relays_earlier_claim_keeps_this_relays_node_unpaid_until_released() {
        let r = Registry::with_limits(Arc::new(Metrics::default()), 0, 1);
        let elsewhere = Claim {
            node: NodeId([7; 16]).to_string(),
            group: IpAddr::from([81, 2, 69, 142]),
            since_us: 1,
        };
        // Another relay's node on this address earns already.
        assert!(r
            .hear_claims("b", std::slice::from_ref(&elsewhere), &[])
            .is_empty());
        let mine = on_one_address(&r, 1);
        assert!(!earns(&mine), "an earlier claim elsewhere wins");
        assert!(r.claims().is_empty());
        // It stops earning there: this node earns, and says so.
        let changed = r.hear_claims("b", &[], std::slice::from_ref(&elsewhere.node));
        assert!(changed.len() == 1 && Arc::ptr_eq(&changed[0], &mine) && earns(&mine));
        assert_eq!(r.claims(), vec![mine.claim()]);
        // A later claim from elsewhere does not displace it.
        let later = Claim {
            since_us: u64::MAX,
            node: NodeId([8; 16]).to_string(),
            ..elsewhere.clone()
        };
        assert!(r.hear_claims("c", &[later], &[]).is_empty() && earns(&mine));
        // An earlier one does (both relays found out at once; the later
        // node yields), and when its relay is gone this node earns again.
        assert_eq!(
            r.hear_claims("b", std::slice::from_ref(&elsewhere), &[])
                .len(),
            1
        );
        assert!(!earns(&mine));
        assert_eq!(r.forget_claims_of("b").len(), 1);
        assert!(earns(&mine));
        // A second node here waits behind the first, and takes over when
        // it leaves.
        let second = on_one_address(&r, 2);
        assert!(!earns(&second));
        let changed = r.remove(&mine);
        assert!(changed.len() == 1 && Arc::ptr_eq(&changed[0], &second) && earns(&second));
    }
}
