//! The cluster's node directory: what each relay can take, summed per
//! country and node kind, sent in its heartbeat. A relay with no free node
//! of its own for a job sends it to the relay with the most free slots that
//! fit; that relay picks the node itself, with every rule it applies to its
//! own customers (block lists, site caps, the target's own network). A
//! summary per country and kind, rather than a message per node, keeps NATS
//! traffic to one heartbeat per relay however many nodes there are.

use crate::nodes::NodeHandle;
use serde::{Deserialize, Serialize};
use spareband_protocol::ClientKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one relay offers of one country and node kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// ISO country code; none when the relay has no GeoIP answer.
    pub country: Option<String>,
    /// Native nodes (they take any target); otherwise browser nodes.
    pub native: bool,
    /// Nodes taking jobs.
    pub nodes: u32,
    /// Free slots among them.
    pub free: u32,
}

/// The offers of a relay's connected nodes.
pub fn offers_of(nodes: &[Arc<NodeHandle>]) -> Vec<Offer> {
    let mut sums: BTreeMap<(Option<String>, bool), (u32, u32)> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.accepting()) {
        let e = sums
            .entry((n.country.clone(), n.kind == ClientKind::Native))
            .or_default();
        e.0 += 1;
        e.1 += n.max_concurrency().saturating_sub(n.active());
    }
    sums.into_iter()
        .map(|((country, native), (nodes, free))| Offer {
            country,
            native,
            nodes,
            free,
        })
        .collect()
}

/// Free slots in `offers` for a job limited to `country`, that browser
/// nodes may take or not.
pub fn free_for(offers: &[Offer], country: Option<&str>, browser_ok: bool) -> u32 {
    fitting(offers, country, browser_ok).map(|o| o.free).sum()
}

/// Nodes in `offers` that could take such a job, free or busy.
pub fn nodes_for(offers: &[Offer], country: Option<&str>, browser_ok: bool) -> u32 {
    fitting(offers, country, browser_ok).map(|o| o.nodes).sum()
}

fn fitting<'a>(
    offers: &'a [Offer],
    country: Option<&'a str>,
    browser_ok: bool,
) -> impl Iterator<Item = &'a Offer> {
    offers
        .iter()
        .filter(move |o| country.is_none_or(|c| o.country.as_deref() == Some(c)))
        .filter(move |o| o.native || browser_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(country: &str, native: bool, free: u32) -> Offer {
        Offer {
            country: Some(country.into()),
            native,
            nodes: 1,
            free,
        }
    }

    #[test]
    fn free_slots_count_only_what_fits_the_job() {
        let offers = [
            offer("DE", true, 3),
            offer("DE", false, 5),
            offer("FR", true, 7),
        ];
        assert_eq!(free_for(&offers, None, true), 15);
        assert_eq!(free_for(&offers, None, false), 10, "browser nodes left out");
        assert_eq!(free_for(&offers, Some("DE"), true), 8);
        assert_eq!(free_for(&offers, Some("DE"), false), 3);
        assert_eq!(free_for(&offers, Some("US"), true), 0);
    }
}
