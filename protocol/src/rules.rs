//! What every hop a node fetches must also pass, beyond the target policy:
//! the relay operator's deny list, the per-site request cap, and the node
//! owner's own addresses. The relay checks the first URL of a job; redirects
//! are followed at the node, so the node gets these rules from its relay
//! ([`crate::RelayMessage::Rules`]) and applies them at every hop itself.
//!
//! One place for each rule: the relay's router and both nodes call these
//! functions, so a site means the same thing everywhere.

use crate::policy::covering_domain;
use std::collections::HashMap;
use std::net::IpAddr;

/// The rules a relay sends a node right after `Welcome`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRules {
    /// The operator's deny list: normalised domains, each covering its
    /// subdomains; at most [`crate::limits::MAX_DENIED_SITES`].
    pub deny: Vec<String>,
    /// Requests the node may send to one site (see [`site_of`]) a minute,
    /// counting every redirect hop; 0: no cap.
    pub site_per_minute: u32,
    /// The node's own address as the relay sees it (the home's public IPv4,
    /// or an IPv6 address inside the home's prefix). Targets inside it (see
    /// [`same_owner_network`]) are refused: they are the owner's router or
    /// the devices behind it.
    pub public_ip: Option<IpAddr>,
}

/// Why a hop breaks one of the [`NodeRules`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The host is on the relay operator's deny list.
    #[error("{host} is on the relay's deny list ({entry})")]
    Denied {
        /// The host asked for.
        host: String,
        /// The deny-list entry that covers it.
        entry: String,
    },
    /// The node has sent its cap of requests to this site this minute.
    #[error("this node already sent its {0} requests this minute to {1}")]
    SiteCapped(u32, String),
    /// The address is the node owner's own (or inside the owner's IPv6
    /// prefix).
    #[error("{0} is this node's own network address")]
    OwnAddress(IpAddr),
}

/// IPv6 prefix length taken as one home: ISPs delegate a /56 (often) to a
/// /64 (at least) to a home, so every device of the home with a global
/// address shares the node's first 56 bits in the common case.
pub const OWNER_IPV6_PREFIX: u32 = 56;

/// IPv6 prefix length taken as one subscriber when counting identities
/// (earning per IP, sign-in lockouts): a /64 is the smallest a home gets,
/// and one machine can take any number of addresses inside it.
pub const SUBSCRIBER_IPV6_PREFIX: u32 = 64;

fn v6_prefix(ip: std::net::Ipv6Addr, bits: u32) -> u128 {
    u128::from(ip) & (u128::MAX << (128 - bits))
}

/// Whether `target` is the node owner's own network: the same IPv4 address
/// as the node's public one (the router's WAN side, port forwards, hairpin
/// NAT), or inside the node's IPv6 /56 ([`OWNER_IPV6_PREFIX`]).
pub fn same_owner_network(node: IpAddr, target: IpAddr) -> bool {
    match (canonical(node), canonical(target)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a == b,
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            v6_prefix(a, OWNER_IPV6_PREFIX) == v6_prefix(b, OWNER_IPV6_PREFIX)
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports an
/// IPv4 peer) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The subscriber an address belongs to, for rules that count identities
/// per address: an IPv4 address itself, an IPv6 address's /64
/// ([`SUBSCRIBER_IPV6_PREFIX`]), so one home cannot mint identities by
/// taking more addresses of its prefix.
pub fn subscriber_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(v6_prefix(v6, SUBSCRIBER_IPV6_PREFIX).into()),
        v4 => v4,
    }
}

/// The site a host belongs to, for per-node caps: the last two labels of a
/// name (three under a two-letter country domain whose second label is
/// short, as in `example.co.uk`), or the whole IP literal. An approximation
/// of the registrable domain without shipping the public suffix list: it can
/// group two unrelated sites under one cap, which errs on the owner's side.
pub fn site_of(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let take = if n >= 3 && labels[n - 1].len() == 2 && labels[n - 2].len() <= 3 {
        3
    } else {
        2
    };
    labels[n.saturating_sub(take)..].join(".")
}

/// Sites a node keeps counts for at once; older minutes are forgotten first.
/// A node sends at most a few thousand requests a minute, so this is never
/// reached by honest traffic and bounds memory against a hostile relay.
pub const MAX_COUNTED_SITES: usize = 10_000;

/// A node's own per-site counter over fixed one-minute windows, counting the
/// first URL and every redirect hop (the relay counts only first URLs when
/// it routes).
#[derive(Debug, Default)]
pub struct SiteCounter {
    /// site → (minute, requests in it).
    counts: HashMap<String, (u64, u32)>,
}

impl SiteCounter {
    /// Counts one request to `host` at `now_ms` (Unix ms), or refuses it
    /// when the site already had `per_minute` this minute (0: no cap).
    pub fn count(&mut self, per_minute: u32, host: &str, now_ms: u64) -> Result<(), RuleError> {
        if per_minute == 0 {
            return Ok(());
        }
        let minute = crate::calendar::minute_of(now_ms as i64) as u64;
        let site = site_of(host);
        if self.counts.len() >= MAX_COUNTED_SITES && !self.counts.contains_key(&site) {
            self.counts.retain(|_, (m, _)| *m == minute);
        }
        let e = self.counts.entry(site.clone()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        if e.1 >= per_minute {
            return Err(RuleError::SiteCapped(per_minute, site));
        }
        e.1 += 1;
        Ok(())
    }
}

impl NodeRules {
    /// The name checks for one hop: the deny list, then the site cap (which
    /// counts the hop when it passes).
    pub fn check_host(
        &self,
        counter: &mut SiteCounter,
        host: &str,
        now_ms: u64,
    ) -> Result<(), RuleError> {
        if let Some(entry) = covering_domain(&self.deny, host) {
            return Err(RuleError::Denied {
                host: host.trim_end_matches('.').to_ascii_lowercase(),
                entry: entry.to_string(),
            });
        }
        counter.count(self.site_per_minute, host, now_ms)
    }

    /// The address check for one hop: an address (literal, resolved, or the
    /// one a browser reports it connected to) inside the owner's network.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), RuleError> {
        match self.public_ip {
            Some(own) if same_owner_network(own, addr) => Err(RuleError::OwnAddress(addr)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_network_is_the_ipv4_address_and_the_ipv6_slash_56() {
        let v4: IpAddr = "81.2.69.142".parse().unwrap();
        assert!(same_owner_network(v4, v4));
        assert!(same_owner_network(
            v4,
            "::ffff:81.2.69.142".parse().unwrap()
        ));
        assert!(!same_owner_network(v4, "81.2.69.143".parse().unwrap()));
        let v6: IpAddr = "2001:db8:aa:bb01::1".parse().unwrap();
        assert!(same_owner_network(
            v6,
            "2001:db8:aa:bbff::99".parse().unwrap()
        ));
        assert!(!same_owner_network(
            v6,
            "2001:db8:aa:cc00::1".parse().unwrap()
        ));
        assert!(!same_owner_network(v4, v6));
    }

    #[test]
    fn subscribers_group_ipv6_by_64_and_keep_ipv4_whole() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(subscriber_of(a), subscriber_of(b));
        assert_ne!(subscriber_of(a), subscriber_of(c));
        let v4: IpAddr = "81.2.69.142".parse().unwrap();
        assert_eq!(subscriber_of(v4), v4);
        assert_eq!(subscriber_of("::ffff:81.2.69.142".parse().unwrap()), v4);
    }

    #[test]
    fn sites_group_names_under_their_domain() {
        assert_eq!(site_of("a.b.example.com"), "example.com");
        assert_eq!(site_of("WWW.Example.COM."), "example.com");
        assert_eq!(site_of("shop.example.co.uk"), "example.co.uk");
        assert_eq!(site_of("81.2.69.142"), "81.2.69.142");
        assert_eq!(site_of("[2001:db8::1]"), "[2001:db8::1]");
    }

    #[test]
    fn every_hop_counts_against_the_site_cap_and_the_window_resets() {
        let rules = NodeRules {
            site_per_minute: 2,
            ..NodeRules::default()
        };
        let mut c = SiteCounter::default();
        let t = 1_700_000_000_000;
        rules.check_host(&mut c, "a.example.com", t).unwrap();
        rules.check_host(&mut c, "b.example.com", t + 1).unwrap();
        assert_eq!(
            rules.check_host(&mut c, "example.com", t + 2),
            Err(RuleError::SiteCapped(2, "example.com".into()))
        );
        rules.check_host(&mut c, "other.org", t + 3).unwrap();
        rules.check_host(&mut c, "example.com", t + 60_000).unwrap();
    }

    #[test]
    fn the_deny_list_covers_subdomains_and_trailing_dots() {
        let rules = NodeRules {
            deny: vec!["denied.example".into()],
            ..NodeRules::default()
        };
        let mut c = SiteCounter::default();
        assert!(rules.check_host(&mut c, "x.denied.example.", 0).is_err());
        assert!(rules.check_host(&mut c, "notdenied.example", 0).is_ok());
    }

    #[test]
    fn the_own_address_is_refused() {
        let rules = NodeRules {
            public_ip: Some("81.2.69.142".parse().unwrap()),
            ..NodeRules::default()
        };
        assert!(rules.check_address("81.2.69.142".parse().unwrap()).is_err());
        assert!(rules.check_address("81.2.69.1".parse().unwrap()).is_ok());
    }
}
