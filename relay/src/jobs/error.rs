//! Why a job did not produce a response: one typed error that says which
//! side failed and whether trying again can help. The words a customer reads
//! are written here once ([`std::fmt::Display`]); the API maps each variant
//! to one error code (`crate::error`).

use spareband_ledger::JobOutcome;
use spareband_protocol::limits::MAX_REQUEST_BODY_BYTES;
use spareband_protocol::FailReason;
use std::time::Duration;

/// The side a failure lies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The customer's request (its body, its target).
    Customer,
    /// The customer's key: its rate, concurrency or quota.
    Key,
    /// The node network: none free, or the node failed.
    Node,
    /// The target site (too slow, too large).
    Target,
    /// The relay itself (its database away).
    Relay,
}

/// What a customer refused for a full records queue is told to wait: the
/// writer tries the database again at least this often.
pub const LEDGER_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Why no node took the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoNode {
    /// No connected node fits the job.
    Unavailable {
        /// The country asked for, if any.
        country: Option<String>,
        /// The city, region or network no node matched, in words, when
        /// that is what found no node.
        area: Option<String>,
        /// The target needs a native node (browser nodes cannot take it).
        needs_native: bool,
    },
    /// Nodes fit, but all stayed busy until the deadline.
    AllBusy,
}

/// How a node failed a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFailure {
    /// The node reported that it could not complete the request.
    Reported(String),
    /// The node had no free slot for the job, so it never started it: the
    /// two counts of the node's free slots disagreed for a moment (a node
    /// that just lowered its concurrency, say). Not the node's fault, and
    /// safe to send again.
    Busy(String),
    /// The node reported a failure after the response head.
    MidResponse(String),
    /// The node's connection ended before the head.
    Disconnected,
    /// The node's connection ended after the head.
    DisconnectedMidResponse,
    /// The node broke the protocol: a body before a head.
    BodyBeforeHead,
    /// The node broke the protocol: a second head.
    SecondHead,
    /// The body the node sent does not match its `Content-Length`.
    LengthMismatch {
        /// Body bytes sent.
        sent: u64,
        /// What `Content-Length` said.
        declared: u64,
    },
}

/// Whose limit a response passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    /// The relay's limit for this mode, in bytes.
    Relay(u64),
    /// The node's, in its words.
    Node(String),
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TooLarge::Relay(limit) => write!(f, "the response body is larger than {limit} bytes"),
            TooLarge::Node(m) => f.write_str(m),
        }
    }
}

/// Why a target or a redirect hop is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forbidden {
    /// The operator's deny list.
    DenyList {
        /// The host asked for.
        host: String,
        /// The list entry that covers it.
        entry: String,
    },
    /// The relay's DNS check.
    NotPublic(crate::resolve::NotPublic),
    /// The node's own check (a redirect hop, say), in the node's words.
    ByNode(String),
}

/// Why the key must slow down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimit {
    /// More requests a second than the key may send.
    KeyRate {
        /// The key's sustained rate.
        per_sec: u32,
        /// When the next request will be taken.
        retry_after: Duration,
    },
    /// Too many of the key's jobs in flight.
    KeyConcurrency {
        /// The key's limit.
        in_flight: u32,
    },
    /// So little of the key's monthly quota is left that its jobs run one
    /// at a time on each relay (see [`crate::keylimits`]).
    KeyQuotaNearlyUsed {
        /// Bytes left this month.
        left: u64,
        /// The key's jobs in flight on this relay.
        in_flight: u32,
    },
    /// Every eligible node has reached its per-minute cap for the site.
    SiteCap {
        /// The site.
        site: String,
        /// The cap.
        per_minute: u32,
        /// When a node will have room.
        retry_after: Duration,
    },
    /// The node's own per-site count stopped a redirect hop.
    NodeSiteCap {
        /// The node's words.
        message: String,
        /// When a node will have room.
        retry_after: Duration,
    },
}

/// A job that failed on the relay of the cluster that holds its node, as
/// that relay said (see `cluster::hop`), or the hop itself failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    /// The API error code the peer gave.
    pub code: crate::error::ErrorCode,
    /// Its words.
    pub message: String,
    /// Which side failed.
    pub side: Side,
    /// Whether the same request may work later.
    pub retryable: bool,
    /// How long to wait, when the peer knew.
    pub retry_after: Option<Duration>,
    /// Whether another relay may have a node that helps.
    pub elsewhere: bool,
    /// Whether the peer answered at all (false: it could not be reached, or
    /// its answer was cut).
    pub reached: bool,
}

impl PeerError {
    /// The relay at `peer` could not be reached, or its answer was cut.
    pub fn unreachable(peer: &str, why: &str) -> Self {
        PeerError {
            code: crate::error::ErrorCode::NodeFailed,
            message: format!("the relay holding the node ({peer}) could not be reached: {why}"),
            side: Side::Relay,
            retryable: true,
            retry_after: None,
            elsewhere: true,
            reached: false,
        }
    }
}

/// Why a job did not produce a response. Each maps to one API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// No node can take the job.
    #[error("{0}")]
    NoNode(NoNode),
    /// The node failed or went away.
    #[error("{0}")]
    NodeFailed(NodeFailure),
    /// The deadline passed.
    #[error("the job did not finish within {0:?}")]
    Timeout(Duration),
    /// The response is larger than allowed.
    #[error("{0}")]
    ResponseTooLarge(TooLarge),
    /// The request body is larger than allowed.
    #[error("the request body is larger than {MAX_REQUEST_BODY_BYTES} bytes")]
    RequestTooLarge,
    /// The customer's request body could not be read.
    #[error("the request body could not be read")]
    RequestUnreadable,
    /// The target (or a redirect hop) is forbidden.
    #[error("{0}")]
    Forbidden(Forbidden),
    /// The node could not send the request as given, in its words.
    #[error("{0}")]
    BadRequest(String),
    /// The key sends too fast, or the site's caps are reached.
    #[error("{0}")]
    RateLimited(RateLimit),
    /// The relay's database has been away long enough that its records
    /// queue is full: new jobs wait rather than go unrecorded.
    #[error(
        "this relay cannot record usage right now (its database is unavailable); try again shortly"
    )]
    LedgerFull,
    /// The key's monthly quota is used up.
    #[error("this key has used {used} of its {quota} bytes this month (UTC); the quota resets on the 1st")]
    QuotaExceeded {
        /// Bytes used this month.
        used: u64,
        /// The key's monthly quota.
        quota: u64,
    },
    /// The relay of the cluster holding the node failed the job, or could
    /// not be reached.
    #[error("{}", .0.message)]
    Peer(PeerError),
}

impl JobError {
    /// What a node's failure report before the response head means for the
    /// job. `site_retry_after` is when a node's site cap frees.
    pub fn before_head(
        reason: FailReason,
        message: String,
        timeout: Duration,
        site_retry_after: Duration,
    ) -> Self {
        match reason {
            FailReason::TargetForbidden => JobError::Forbidden(Forbidden::ByNode(message)),
            FailReason::Timeout => JobError::Timeout(timeout),
            FailReason::TooLarge => JobError::ResponseTooLarge(TooLarge::Node(message)),
            FailReason::BadRequest => JobError::BadRequest(message),
            // That node's own count for a redirect hop's site: another node
            // may still have room.
            FailReason::SiteCapped => JobError::RateLimited(RateLimit::NodeSiteCap {
                message,
                retry_after: site_retry_after,
            }),
            FailReason::Busy => JobError::NodeFailed(NodeFailure::Busy(message)),
            FailReason::TargetUnreachable | FailReason::Paused | FailReason::Internal => {
                JobError::NodeFailed(NodeFailure::Reported(message))
            }
        }
    }

    /// Whether the node refused the job as busy before starting it.
    pub fn node_was_busy(&self) -> bool {
        matches!(self, JobError::NodeFailed(NodeFailure::Busy(_)))
    }

    /// What a node's failure report after the response head means.
    pub fn mid_response(reason: FailReason, message: String, timeout: Duration) -> Self {
        match reason {
            FailReason::Timeout => JobError::Timeout(timeout),
            FailReason::TooLarge => JobError::ResponseTooLarge(TooLarge::Node(message)),
            _ => JobError::NodeFailed(NodeFailure::MidResponse(message)),
        }
    }

    /// The side the failure lies with.
    pub fn side(&self) -> Side {
        match self {
            JobError::NoNode(_) | JobError::NodeFailed(_) => Side::Node,
            JobError::Timeout(_) | JobError::ResponseTooLarge(_) => Side::Target,
            JobError::RateLimited(RateLimit::SiteCap { .. } | RateLimit::NodeSiteCap { .. }) => {
                Side::Node
            }
            JobError::RateLimited(_) | JobError::QuotaExceeded { .. } => Side::Key,
            JobError::LedgerFull => Side::Relay,
            JobError::Peer(p) => p.side,
            JobError::RequestTooLarge
            | JobError::RequestUnreadable
            | JobError::Forbidden(_)
            | JobError::BadRequest(_) => Side::Customer,
        }
    }

    /// Whether the customer may get an answer by sending the same request
    /// again later (after [`JobError::retry_after`] when there is one).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            JobError::NoNode(_)
                | JobError::NodeFailed(_)
                | JobError::Timeout(_)
                | JobError::RateLimited(_)
                | JobError::LedgerFull
        ) || matches!(self, JobError::Peer(p) if p.retryable)
    }

    /// Whether another relay of the cluster may run the job where this one
    /// could not: no node fit here, or the one it had failed.
    pub fn another_relay_may_help(&self) -> bool {
        match self {
            JobError::Peer(p) => p.elsewhere,
            JobError::NoNode(NoNode::Unavailable { .. }) => true,
            JobError::RateLimited(RateLimit::SiteCap { .. }) => true,
            e => e.another_node_may_help(),
        }
    }

    /// Whether the relay may try the same job on another node at once: the
    /// failure was that node's, not the request's.
    pub fn another_node_may_help(&self) -> bool {
        matches!(
            self,
            JobError::NodeFailed(_) | JobError::RateLimited(RateLimit::NodeSiteCap { .. })
        )
    }

    /// How long to wait before sending again, when the relay knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JobError::RateLimited(
                RateLimit::KeyRate { retry_after, .. }
                | RateLimit::SiteCap { retry_after, .. }
                | RateLimit::NodeSiteCap { retry_after, .. },
            ) => Some(*retry_after),
            JobError::RateLimited(
                RateLimit::KeyConcurrency { .. } | RateLimit::KeyQuotaNearlyUsed { .. },
            ) => Some(Duration::from_secs(1)),
            JobError::LedgerFull => Some(LEDGER_RETRY_AFTER),
            JobError::Peer(p) => p.retry_after,
            _ => None,
        }
    }

    /// How a job attempt that ended in this error is recorded: failures the
    /// relay retries elsewhere count against the node that had the job; a
    /// busy refusal does not (the node never started the job).
    pub fn outcome(&self) -> JobOutcome {
        match self {
            JobError::Timeout(_) => JobOutcome::Timeout,
            e if e.node_was_busy() => JobOutcome::Refused,
            e if e.another_node_may_help() => JobOutcome::NodeFailed,
            _ => JobOutcome::Refused,
        }
    }
}

impl std::fmt::Display for NoNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoNode::Unavailable {
                country,
                area,
                needs_native,
            } => {
                match (area, country) {
                    (Some(a), Some(c)) => write!(f, "no node in country {c} is in {a}")?,
                    (Some(a), None) => write!(f, "no node is in {a}")?,
                    (None, Some(c)) => write!(f, "no node is available in country {c}")?,
                    (None, None) => f.write_str("no node is available right now")?,
                }
                if *needs_native {
                    f.write_str(
                        " that can take this target: browser nodes fetch only https on port 443 \
                         from names the relay resolves, so it needs a native node",
                    )?;
                }
                Ok(())
            }
            NoNode::AllBusy => f.write_str("every eligible node stayed busy until the deadline"),
        }
    }
}

impl std::fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeFailure::Reported(m) | NodeFailure::Busy(m) => {
                write!(f, "the node could not complete the request: {m}")
            }
            NodeFailure::MidResponse(m) => write!(f, "the node failed mid-response: {m}"),
            NodeFailure::Disconnected => f.write_str("the node disconnected before answering"),
            NodeFailure::DisconnectedMidResponse => {
                f.write_str("the node disconnected mid-response")
            }
            NodeFailure::BodyBeforeHead => f.write_str("the node sent a body before a head"),
            NodeFailure::SecondHead => f.write_str("the node sent a second response head"),
            NodeFailure::LengthMismatch { sent, declared } => write!(
                f,
                "the node sent {sent} body bytes but Content-Length said {declared}"
            ),
        }
    }
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Forbidden::DenyList { host, entry } => {
                write!(f, "{host} is on this relay's deny list ({entry})")
            }
            Forbidden::NotPublic(e) => write!(f, "{e}"),
            Forbidden::ByNode(m) => f.write_str(m),
        }
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateLimit::KeyRate { per_sec, .. } => write!(
                f,
                "this key sends more than {per_sec} requests a second; retry after the Retry-After time"
            ),
            RateLimit::KeyConcurrency { in_flight } => write!(
                f,
                "this key already has {in_flight} requests in flight; wait for some to finish"
            ),
            RateLimit::KeyQuotaNearlyUsed { left, in_flight } => write!(
                f,
                "this key has {left} bytes of its monthly quota left, so its jobs run one at a time \
                 on each relay; {in_flight} is in flight here, wait for it to finish"
            ),
            RateLimit::SiteCap {
                site, per_minute, ..
            } => write!(
                f,
                "every eligible node has sent its {per_minute} requests this minute to {site}; \
                 retry after the Retry-After time"
            ),
            RateLimit::NodeSiteCap { message, .. } => {
                write!(f, "the node's per-site cap stopped a redirect: {message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_says_its_side_and_whether_to_retry() {
        let node = JobError::NodeFailed(NodeFailure::Disconnected);
        assert_eq!(node.side(), Side::Node);
        assert!(node.retryable() && node.another_node_may_help());
        assert_eq!(node.outcome(), JobOutcome::NodeFailed);
        let forbidden = JobError::Forbidden(Forbidden::ByNode("no".into()));
        assert_eq!(forbidden.side(), Side::Customer);
        assert!(!forbidden.retryable() && !forbidden.another_node_may_help());
        assert_eq!(forbidden.outcome(), JobOutcome::Refused);
        let busy = JobError::NodeFailed(NodeFailure::Busy("full".into()));
        assert!(busy.node_was_busy() && busy.another_node_may_help());
        assert_eq!(
            busy.outcome(),
            JobOutcome::Refused,
            "never counted against the node"
        );
        let quota = JobError::QuotaExceeded { used: 5, quota: 4 };
        assert_eq!((quota.side(), quota.retryable()), (Side::Key, false));
        let rate = JobError::RateLimited(RateLimit::KeyConcurrency { in_flight: 3 });
        assert_eq!(rate.retry_after(), Some(Duration::from_secs(1)));
        let full = JobError::LedgerFull;
        assert_eq!((full.side(), full.retryable()), (Side::Relay, true));
        assert_eq!(full.outcome(), JobOutcome::Refused);
        let answer = crate::error::ApiError::from(full);
        assert_eq!(answer.code.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.retry_after, Some(2), "with Retry-After");
        assert_eq!(
            JobError::Timeout(Duration::from_secs(2)).outcome(),
            JobOutcome::Timeout
        );
        assert_eq!(
            JobError::ResponseTooLarge(TooLarge::Relay(10)).to_string(),
            "the response body is larger than 10 bytes"
        );
    }
}
