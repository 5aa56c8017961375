//! The checks every hop of a job passes at the native node beyond the target
//! policy: the relay operator's deny list and per-site cap (from the relay's
//! [`RelayMessage::Rules`](spareband_protocol::RelayMessage::Rules)), and
//! the owner's own addresses: the public address the relay sees this node
//! connect from, and the addresses of this machine's own interfaces. A
//! target inside one of them is the owner's router, a port forward to a
//! device at home, or this machine; none is ever fetched.

use spareband_protocol::rules::{same_owner_network, NodeRules, RuleError, SiteCounter};
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

/// Shared by the connection (which sets the rules), the jobs and the resolver.
#[derive(Debug, Default)]
pub struct HopGuard {
    rules: RwLock<NodeRules>,
    counter: Mutex<SiteCounter>,
    /// Public addresses of this machine's interfaces.
    interfaces: RwLock<Vec<IpAddr>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl HopGuard {
    /// A guard that knows this machine's interface addresses (read again by
    /// [`HopGuard::set_rules`] at each connection).
    pub fn new() -> Self {
        let g = HopGuard::default();
        g.refresh_interfaces();
        g
    }

    /// The rules of a new connection, and a fresh look at the interfaces (a
    /// laptop changes networks between connections).
    pub fn set_rules(&self, rules: NodeRules) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
        self.refresh_interfaces();
    }

    fn refresh_interfaces(&self) {
        // Only public ones matter: the policy refuses every other address.
        let addrs = if_addrs::get_if_addrs()
            .map(|list| {
                list.into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| spareband_protocol::policy::is_public_ip(*ip))
                    .collect()
            })
            .unwrap_or_default();
        *self.interfaces.write().unwrap_or_else(|e| e.into_inner()) = addrs;
    }

    /// The deny list and the site cap, for the first URL and each redirect
    /// hop (a hop that passes is counted).
    pub fn check_host(&self, host: &str) -> Result<(), RuleError> {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        rules.check_host(&mut counter, host, now_ms())
    }

    /// The owner's own addresses, for every address a hop would connect to.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), RuleError> {
        self.rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .check_address(addr)?;
        let interfaces = self.interfaces.read().unwrap_or_else(|e| e.into_inner());
        match interfaces.iter().any(|own| same_owner_network(*own, addr)) {
            true => Err(RuleError::OwnAddress(addr)),
            false => Ok(()),
        }
    }
}
