//! Per-node, per-site request caps: how many requests one node may send to
//! one site in a minute, so customers cannot get a home address banned by
//! hammering one site through it.

use spareband_protocol::NodeId;
use std::collections::HashMap;
use std::sync::Mutex;

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
    (spareband_ledger::clock::now_ms() / 60_000).max(0) as u64
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
    pub(super) fn capped_nodes(&self, site: &str) -> std::collections::HashSet<NodeId> {
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
    pub(super) fn capped(&self, node: &NodeId, site: &str) -> bool {
        self.capped_nodes(site).contains(node)
    }

    pub(super) fn count(&self, node: &NodeId, site: &str) {
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
        let secs = (spareband_ledger::clock::now_ms() / 1000).max(0) as u64;
        std::time::Duration::from_secs(60 - secs % 60)
    }
}
