//! Pins: a customer's sticky `session` string (the API's name for it) pins
//! its jobs to one node for a while, so a multi-step scrape keeps one IP
//! address. The pin slides: each use extends it by the TTL. A pin whose node
//! has gone is replaced. In a cluster, a pin made by another relay is kept
//! with that relay's id, so a job of the session goes there. ("Session" elsewhere in the relay means nothing
//! else: a node's connection is a connection, an admin's is a sign-in.)

use spareband_ledger::CustomerId;
use spareband_protocol::NodeId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most pins kept at once; past it, expired pins are swept before adding.
const MAX_PINS: usize = 1_000_000;

/// Where a session is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The node.
    pub node: NodeId,
    /// The relay of the cluster that holds it; none for this relay.
    pub relay: Option<String>,
}

/// A pin, its last use and its lifetime.
type Entry = (Pinned, Instant, Duration);

/// The pin table.
pub struct Pins {
    ttl: Duration,
    /// Each pin with its last use and its own lifetime.
    pins: Mutex<HashMap<(CustomerId, String), Entry>>,
}

impl Pins {
    /// An empty table with the given pin lifetime.
    pub fn new(ttl: Duration) -> Self {
        Pins {
            ttl,
            pins: Mutex::new(HashMap::new()),
        }
    }

    /// Where this session is pinned, if the pin is still live.
    pub fn get(&self, customer: CustomerId, session: &str) -> Option<Pinned> {
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.get(&(customer, session.to_string()))
            .filter(|(_, at, ttl)| at.elapsed() < *ttl)
            .map(|(p, _, _)| p.clone())
    }

    /// Pins (or re-pins) the session to `node` of this relay, starting a
    /// fresh lifetime: `ttl`, or the relay's default.
    pub fn pin(&self, customer: CustomerId, session: &str, node: NodeId, ttl: Option<Duration>) {
        self.put(customer, session, Pinned { node, relay: None }, ttl);
    }

    /// Pins the session to `node` of another relay of the cluster.
    pub fn pin_elsewhere(
        &self,
        customer: CustomerId,
        session: &str,
        node: NodeId,
        relay: String,
        ttl: Option<Duration>,
    ) {
        self.put(
            customer,
            session,
            Pinned {
                node,
                relay: Some(relay),
            },
            ttl,
        );
    }

    fn put(&self, customer: CustomerId, session: &str, pinned: Pinned, ttl: Option<Duration>) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        if pins.len() >= MAX_PINS {
            pins.retain(|_, (_, at, ttl)| at.elapsed() < *ttl);
        }
        pins.insert(
            (customer, session.to_string()),
            (pinned, Instant::now(), ttl.unwrap_or(self.ttl)),
        );
    }

    /// Drops expired pins.
    pub fn sweep(&self) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.retain(|_, (_, at, ttl)| at.elapsed() < *ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_expire_and_are_per_customer() {
        let s = Pins::new(Duration::from_millis(50));
        let a = NodeId([1; 16]);
        s.pin(1, "x", a, None);
        s.pin(1, "long", a, Some(Duration::from_secs(60)));
        assert_eq!(s.get(1, "x").map(|p| p.node), Some(a));
        s.pin_elsewhere(1, "y", a, "r2".into(), None);
        assert_eq!(s.get(1, "y").and_then(|p| p.relay).as_deref(), Some("r2"));
        assert_eq!(s.get(2, "x"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.get(1, "x"), None);
        assert_eq!(
            s.get(1, "long").map(|p| p.node),
            Some(a),
            "its own lifetime"
        );
        s.sweep();
        assert_eq!(s.pins.lock().unwrap().len(), 1);
    }
}
