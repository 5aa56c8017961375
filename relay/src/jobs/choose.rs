//! Before a node: the relay's own checks on the target (deny list, DNS),
//! the key's admission, and the choice of a node (waiting for a free slot
//! while eligible nodes exist but are all busy).

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
/// list, then the target name's DNS answers.
pub(super) async fn screen(state: &AppState, target: &Target) -> Result<Screened, JobError> {
    if let Some(host) = target.url.host_str() {
        if let Some(entry) = state.deny.denies(host) {
            return Err(JobError::Forbidden(Forbidden::DenyList {
                host: host.to_string(),
                entry: entry.to_string(),
            }));
        }
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
        }
    })
}

/// What a job asks of its node.
pub(super) struct Wanted<'a> {
    pub customer: CustomerId,
    pub country: Option<&'a str>,
    pub session: Option<&'a str>,
    pub site: Option<String>,
    pub host: Option<&'a str>,
    /// Whether browser nodes may take the job.
    pub browser_ok: bool,
    /// The target's addresses as the relay knows them: no node whose own
    /// network holds one of them may take the job.
    pub addrs: &'a [std::net::IpAddr],
}

/// Picks a node for the job, waiting for a free slot while eligible nodes
/// exist but are all busy.
pub(super) async fn choose_node(
    state: &AppState,
    req: &Wanted<'_>,
    tried: &[NodeId],
    deadline: Instant,
) -> Result<Arc<NodeHandle>, JobError> {
    // A live pin on a connected, accepting node that has not failed this job
    // is the only candidate; otherwise the pin is renewed on another node.
    let pinned = req
        .session
        .and_then(|s| state.pins.get(req.customer, s))
        .filter(|id| !tried.contains(id))
        .filter(|id| state.registry.get(id).is_some_and(|n| n.accepting()));
    let pick = Pick {
        site: req.site.as_deref(),
        host: req.host,
        country: req.country,
        exclude: tried,
        only: pinned,
        browser_ok: req.browser_ok,
        target_addrs: req.addrs,
    };
    loop {
        let changed = state.registry.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match state.registry.pick(&pick) {
            PickResult::Reserved(n) => return Ok(n),
            PickResult::NoCandidate => {
                return Err(JobError::NoNode(NoNode::Unavailable {
                    country: req.country.map(str::to_string),
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
