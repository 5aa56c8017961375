//! Who earns on a shared address: at most `earning_nodes_per_ip` nodes of one
//! address group ([`crate::peer::AddrGroup`]) earn, and they are the ones
//! connected longest. In a cluster the rule holds over every relay: each
//! relay tells the others which of its nodes earn ([`Claim`]s, on NATS) and
//! ranks its own nodes together with the claims it has heard, so the same
//! nodes win everywhere.
//!
//! Only earning nodes are announced, so a farm of unpaid nodes behind one
//! address sends nothing. That is enough to agree: a relay promotes its own
//! node only when no earlier claim stands in the way, and a later claim
//! yields as soon as it hears an earlier one. Two nodes of one address can
//! both earn only while a claim is on its way (one NATS message), or, when a
//! message is lost, until the next full resend ([`RESEND_EVERY`]). A relay
//! cut from NATS ranks its own nodes alone once the claims it heard expire
//! ([`CLAIM_TTL`]).

use crate::peer::AddrGroup;
use serde::{Deserialize, Serialize};
use spareband_protocol::NodeId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a relay sends every claim it holds again, so a lost message is
/// mended (a relay that joins asks for every claim at once). Rare, because
/// at a million earning nodes each resend is some 110 MB that every relay
/// parses (docs/DEPLOY.md).
pub const RESEND_EVERY: Duration = Duration::from_secs(60);
/// A claim not heard again within this long no longer counts: three
/// resends, so one lost message does not drop it. A gone relay's claims go
/// sooner, when the cluster stops counting it.
pub const CLAIM_TTL: Duration = Duration::from_secs(185);

/// A node of some relay that earns, as the other relays learn it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The node (hex id).
    pub node: String,
    /// The address group it earns for (the group's first address: an IPv4
    /// address, or an IPv6 /64).
    pub group: IpAddr,
    /// When it connected, in microseconds since 1970 (the relay's clock):
    /// the earlier connection wins.
    pub since_us: u64,
}

/// A node's place in its address's queue: earlier first, the node id
/// breaking ties, so every relay ranks the same nodes the same way.
pub type Rank = (u64, NodeId);

/// Now, as a [`Claim::since_us`].
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The claims other relays made, by node.
#[derive(Debug, Default)]
pub struct Claims {
    by_node: HashMap<NodeId, Heard>,
}

#[derive(Debug)]
struct Heard {
    relay: String,
    group: AddrGroup,
    since_us: u64,
    at: Instant,
}

impl Claims {
    /// Takes relay `relay`'s new claims and the nodes it says no longer
    /// earn; returns the groups whose ranking may have changed.
    pub fn hear(&mut self, relay: &str, claims: &[Claim], released: &[String]) -> Vec<AddrGroup> {
        let now = Instant::now();
        let mut touched = Vec::new();
        for c in claims {
            let Some(node) = NodeId::parse(&c.node) else {
                continue;
            };
            let group = AddrGroup::of(c.group);
            self.by_node.insert(
                node,
                Heard {
                    relay: relay.to_string(),
                    group,
                    since_us: c.since_us,
                    at: now,
                },
            );
            touched.push(group);
        }
        for n in released {
            let Some(node) = NodeId::parse(n) else {
                continue;
            };
            // Only the relay that made a claim withdraws it: a node that
            // moved keeps the claim its new relay made.
            if self.by_node.get(&node).is_some_and(|h| h.relay == relay) {
                if let Some(h) = self.by_node.remove(&node) {
                    touched.push(h.group);
                }
            }
        }
        touched.sort_unstable_by_key(|g| g.to_string());
        touched.dedup();
        touched
    }

    /// Drops every claim of `relay` (gone); returns the groups they held.
    pub fn forget_relay(&mut self, relay: &str) -> Vec<AddrGroup> {
        self.drop_where(|h| h.relay == relay)
    }

    /// Drops claims not heard again within [`CLAIM_TTL`]; returns the
    /// groups they held.
    pub fn expire(&mut self) -> Vec<AddrGroup> {
        self.drop_where(|h| h.at.elapsed() >= CLAIM_TTL)
    }

    fn drop_where(&mut self, gone: impl Fn(&Heard) -> bool) -> Vec<AddrGroup> {
        let mut groups = Vec::new();
        self.by_node.retain(|_, h| {
            let drop = gone(h);
            if drop {
                groups.push(h.group);
            }
            !drop
        });
        groups.sort_unstable_by_key(|g| g.to_string());
        groups.dedup();
        groups
    }

    /// The ranks of other relays' earning nodes in `group`, leaving out
    /// nodes connected here (`local`): a node that moved to this relay is
    /// ranked by its connection here.
    pub fn ranks_in(&self, group: AddrGroup, local: impl Fn(&NodeId) -> bool) -> Vec<Rank> {
        self.by_node
            .iter()
            .filter(|(id, h)| h.group == group && h.at.elapsed() < CLAIM_TTL && !local(id))
            .map(|(id, h)| (h.since_us, *id))
            .collect()
    }
}

/// Which of `local` earn, given the claims of other relays (`remote`): the
/// first `per_group` of all of them by [`Rank`]. `per_group` 0 means every
/// node earns.
pub fn winners(local: &[Rank], remote: &[Rank], per_group: u32) -> Vec<NodeId> {
    if per_group == 0 {
        return local.iter().map(|(_, id)| *id).collect();
    }
    let mut all: Vec<(Rank, bool)> = local
        .iter()
        .map(|r| (*r, true))
        .chain(remote.iter().map(|r| (*r, false)))
        .collect();
    all.sort_unstable();
    all.into_iter()
        .take(per_group as usize)
        .filter(|(_, mine)| *mine)
        .map(|((_, id), _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 16])
    }

    #[test]
    fn the_earliest_connections_win_wherever_they_are() {
        // Here: nodes 1 (t=30) and 2 (t=10); elsewhere: node 3 (t=20).
        let local = [(30, id(1)), (10, id(2))];
        let remote = [(20, id(3))];
        assert_eq!(winners(&local, &remote, 1), vec![id(2)]);
        assert_eq!(winners(&local, &remote, 2), vec![id(2)], "3 is second");
        assert_eq!(winners(&local, &remote, 3), vec![id(2), id(1)]);
        assert_eq!(winners(&local, &[(5, id(3))], 1), Vec::<NodeId>::new());
        assert_eq!(winners(&local, &remote, 0).len(), 2, "0: all earn");
        // The same instant: the lower id wins, on every relay alike.
        assert_eq!(
            winners(&[(7, id(9))], &[(7, id(4))], 1),
            Vec::<NodeId>::new()
        );
        assert_eq!(winners(&[(7, id(4))], &[(7, id(9))], 1), vec![id(4)]);
    }

    #[test]
    fn claims_are_withdrawn_only_by_the_relay_that_made_them() {
        let mut c = Claims::default();
        let group: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        let claim = Claim {
            node: id(1).to_string(),
            group,
            since_us: 5,
        };
        let g = c.hear("a", std::slice::from_ref(&claim), &[]);
        assert_eq!(g, vec![AddrGroup::of(group)]);
        // Another address of the same /64 finds the claim.
        let other = AddrGroup::of("2001:db8:1:2::99".parse().unwrap());
        assert_eq!(c.ranks_in(other, |_| false), vec![(5, id(1))]);
        assert!(c.ranks_in(other, |n| *n == id(1)).is_empty(), "now local");
        // Relay b did not make it: its release changes nothing.
        assert!(c.hear("b", &[], &[id(1).to_string()]).is_empty());
        assert_eq!(c.ranks_in(other, |_| false).len(), 1);
        assert_eq!(c.forget_relay("a"), vec![AddrGroup::of(group)]);
        assert!(c.ranks_in(other, |_| false).is_empty());
        assert!(c.expire().is_empty());
    }
}
