//! The address group of a peer: what every per-address rule (earning nodes
//! per address, admin sign-in lockouts, connection caps) counts by, so they
//! all agree on what "one address" means.
//!
//! An IPv4 address is its own group. An IPv6 address counts as its /64: a
//! single subscriber line is routinely given a whole /64 (RFC 6177, and SLAAC
//! needs one), so counting exact IPv6 addresses would give one household 2^64
//! identities. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket
//! reports for an IPv4 peer) is the IPv4 address it maps.

use spareband_protocol::rules::{subscriber_of, SUBSCRIBER_IPV6_PREFIX};
use std::fmt;
use std::net::IpAddr;

/// IPv4-mapped IPv6 peers (from dual-stack sockets) as plain IPv4: the
/// protocol crate's rule, which nodes apply to their own address too.
pub use spareband_protocol::rules::canonical;

/// One group of addresses treated as one peer by per-address rules
/// ([`spareband_protocol::rules::subscriber_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrGroup(IpAddr);

impl AddrGroup {
    /// The group `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        AddrGroup(subscriber_of(ip))
    }

    /// The group's first address (what [`AddrGroup::of`] maps back to it).
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for AddrGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{SUBSCRIBER_IPV6_PREFIX}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(s: &str) -> AddrGroup {
        AddrGroup::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_groups_by_64_and_ipv4_by_address() {
        assert_eq!(group("2001:db8:1:2::1"), group("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_ne!(group("192.0.2.1"), group("192.0.2.2"));
        assert_eq!(group("::ffff:192.0.2.1"), group("192.0.2.1"));
        assert_eq!(group("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }
}
