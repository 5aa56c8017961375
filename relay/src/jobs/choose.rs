//! Before a node: the relay's own checks on the target (deny list, DNS),
//! the key's admission, and the choice of a node (waiting for a free slot
//! while eligible nodes exist but are all busy). In a cluster the choice
//! may be another relay: the one a session is pinned on, or, when no node
//! of this relay is free, the one offering the most free slots that fit.

use super::error::{Forbidden, JobError, NoNode, RateLimit};
use crate::keylimits::{Permit, Refusal};
use crate::nodes::{NodeHandle, Pick, PickResult};
use crate::resolve::Screened;
use crate::AppState;
use spareband_ledger::{CustomerId, JobOutcome};
use spareband_protocol::{NodeId, Target};
use std::sync::Arc;
use tokio::time::Instant;

/// The relay's own checks before any node is involved: the operator's deny
/// list, then the target name's DNS answers, unless `resolve` is false (a
/// tunnel's name is the node's to resolve, as SOCKS5's `socks5h` asks; the
/// node checks every address it connects to).
pub(super) async fn screen(
    state: &AppState,
    target: &Target,
    resolve: bool,
) -> Result<Screened, JobError> {
    if let Some(host) = target.url.host_str() {
        if let Some(entry) = state.deny.denies(host) {
            return Err(JobError::Forbidden(Forbidden::DenyList {
                host: host.to_string(),
                entry: entry.to_string(),
            }));
        }
    }
    if !resolve
        && matches!(
            target.host,
            spareband_protocol::policy::TargetHost::Domain(_)
        )
    {
        return Ok(Screened::Unresolved);
    }
    state
        .resolver
        .check(&state.policy, target)
        .await
        .map_err(|e| JobError::Forbidden(Forbidden::NotPublic(e)))
}

/// Admits a job of `customer` against its key's rate, concurrency and
/// quota: the permit holds a concurrency slot until it is dropped. Callers
/// that read a large request body admit first (see `api/fetch.rs`).
pub async fn admit(state: &AppState, customer: CustomerId) -> Result<Permit, JobError> {
    // A job the ledger has no room to record is not run: refused now, not
    // served and forgotten.
    if !state.ledger.accepting() {
        state.metrics.job(JobOutcome::Refused, 0, 0);
        return Err(JobError::LedgerFull);
    }
    state.keys.admit(&state.db, customer).await.map_err(|why| {
        state.metrics.job(JobOutcome::Refused, 0, 0);
        match why {
            Refusal::Rate(wait) => JobError::RateLimited(RateLimit::KeyRate {
                per_sec: state.config.key_rate_per_sec,
                retry_after: wait,
            }),
            Refusal::Concurrency(n) => {
                JobError::RateLimited(RateLimit::KeyConcurrency { in_flight: n })
            }
            Refusal::Quota(used, quota) => JobError::QuotaExceeded { used, quota },
            Refusal::QuotaNearlyUsed(left, in_flight) => {
                JobError::RateLimited(RateLimit::KeyQuotaNearlyUsed { left, in_flight })
            }
        }
    })
}

/// The part of `area` no node matches once the rest of `pick` holds, in
/// words (`city 'milton'`), so a refusal says which filter found no node;
/// none when the area is not what stands in the way.
fn unmatched_area(state: &AppState, pick: &Pick<'_>, area: &crate::geo::Area) -> Option<String> {
    use crate::geo::Area;
    if *area == Area::default() {
        return None;
    }
    let open = Pick {
        area: None,
        ..pick.clone()
    };
    if !state.registry.any_eligible(&open) {
        return None;
    }
    // Narrow one filter at a time, the widest first.
    let steps = [
        (
            Area {
                region: area.region.clone(),
                ..Area::default()
            },
            area.region.as_ref().map(|r| format!("region '{r}'")),
        ),
        (
            Area {
                region: area.region.clone(),
                city: area.city.clone(),
                ..Area::default()
            },
            area.city.as_ref().map(|c| format!("city '{c}'")),
        ),
        (area.clone(), area.asn.map(|a| format!("AS {a}"))),
    ];
    steps.into_iter().find_map(|(narrower, said)| {
        let p = Pick {
            area: Some(&narrower),
            ..pick.clone()
        };
        if state.registry.any_eligible(&p) {
            None
        } else {
            said
        }
    })
}

/// What a job asks of its node.
pub(super) struct Wanted<'a> {
    pub customer: CustomerId,
    pub country: Option<&'a str>,
    pub area: &'a crate::geo::Area,
    pub session: Option<&'a str>,
    pub site: Option<String>,
    pub host: Option<&'a str>,
    /// Whether browser nodes may take the job.
    pub browser_ok: bool,
    /// The target's addresses as the relay knows them: no node whose own
    /// network holds one of them may take the job.
    pub addrs: &'a [std::net::IpAddr],
    /// Only this node (a peer relay sent a session's job to its node).
    pub only: Option<NodeId>,
    /// The job came from another relay, or is a tunnel: it runs here or
    /// nowhere.
    pub from_peer: bool,
}

/// Where a job goes.
pub(super) enum Chosen {
    /// To a node of this relay, a slot reserved.
    Here(Arc<NodeHandle>),
    /// To another relay of the cluster.
    Peer {
        /// Its id.
        relay: String,
        /// Where it takes jobs.
        url: String,
        /// The node the job must run on (a pinned session).
        only: Option<NodeId>,
    },
}

/// Picks a node for the job, waiting for a free slot while eligible nodes
/// exist but are all busy. In a cluster, a session pinned on another
/// relay's node goes there; a job no node of this relay is free for goes to
/// the relay offering the most free slots that fit (this relay's own nodes
/// come first whenever one is free). `tried_relays` have failed this job.
pub(super) async fn choose_node(
    state: &AppState,
    req: &Wanted<'_>,
    tried: &[NodeId],
    tried_relays: &[String],
    deadline: Instant,
) -> Result<Chosen, JobError> {
    let cluster = state.cluster.get().filter(|_| !req.from_peer);
    let pin = req
        .session
        .and_then(|s| state.pins.get(req.customer, s))
        .filter(|p| !tried.contains(&p.node));
    // A live pin on a connected, accepting node that has not failed this job
    // is the only candidate; otherwise the pin is renewed on another node.
    let pinned = pin
        .as_ref()
        .map(|p| p.node)
        .filter(|id| state.registry.get(id).is_some_and(|n| n.accepting()))
        .or(req.only);
    if pinned.is_none() {
        if let (Some(c), Some(p)) = (cluster, &pin) {
            let peer = p.relay.as_ref().filter(|r| !tried_relays.contains(r));
            if let Some(m) = peer.and_then(|r| c.peer(r)) {
                return Ok(Chosen::Peer {
                    relay: m.id,
                    url: m.url,
                    only: Some(p.node),
                });
            }
        }
    }
    let pick = Pick {
        site: req.site.as_deref(),
        host: req.host,
        country: req.country,
        area: Some(req.area),
        exclude: tried,
        only: pinned,
        browser_ok: req.browser_ok,
        target_addrs: req.addrs,
    };
    let mut first = true;
    loop {
        let changed = state.registry.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let picked = state.registry.pick(&pick);
        let here = matches!(picked, PickResult::Reserved(_));
        // None free here: a relay that has one takes the job at once.
        if let Some(c) = cluster.filter(|_| first && !here && pinned.is_none()) {
            // No node here at all: one holding a busy node queues it.
            let queued = || match picked {
                PickResult::NoCandidate => {
                    c.relay_holding(req.country, req.browser_ok, tried_relays)
                }
                _ => None,
            };
            if let Some(m) = c
                .relay_for(req.country, req.browser_ok, tried_relays)
                .or_else(queued)
            {
                return Ok(Chosen::Peer {
                    relay: m.id,
                    url: m.url,
                    only: None,
                });
            }
        }
        first = false;
        match picked {
            PickResult::Reserved(n) => return Ok(Chosen::Here(n)),
            PickResult::NoCandidate => {
                return Err(JobError::NoNode(NoNode::Unavailable {
                    country: req.country.map(str::to_string),
                    area: unmatched_area(state, &pick, req.area),
                    needs_native: !req.browser_ok,
                }))
            }
            PickResult::SiteCapped => {
                return Err(JobError::RateLimited(RateLimit::SiteCap {
                    site: req.site.as_deref().unwrap_or("this site").to_string(),
                    per_minute: state.registry.caps.per_minute(),
                    retry_after: state.registry.caps.retry_after(),
                }));
            }
            PickResult::Busy => {}
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Err(JobError::NoNode(NoNode::AllBusy));
        }
    }
}
