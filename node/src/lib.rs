//! The Spareband native node: a headless program that lends a server's
//! connection to the network. It keeps one WebSocket to a relay (of the
//! relays it is given, moving to the next when one fails), runs the jobs the
//! relay sends, and applies the shared target policy before every request and
//! every redirect hop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod connection;
mod guard;
pub mod http;
mod job;
pub mod keys;
mod outbox;
pub mod owner;
pub mod receipts;
mod tls;
mod tunnel;

pub use backoff::{RECONNECT_BASE, RECONNECT_MAX};
pub use connection::{ConnectionEnd, ConnectionError};
pub use spareband_protocol::backoff::Backoff;

use ed25519_dalek::SigningKey;
use spareband_protocol::gateway::relay_list;
use spareband_protocol::identity::canonical_origin;
use spareband_protocol::limits::MAX_RELAYS;
use spareband_protocol::{NodeId, TargetPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Default number of jobs run at once.
pub const DEFAULT_MAX_CONCURRENCY: u16 = 32;

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The relays, at least one and at most
    /// [`spareband_protocol::limits::MAX_RELAYS`]: each
    /// `https://host:port`, `wss://host:port/v1/node`, or the `http`/`ws`
    /// forms for a relay on loopback. The node connects to one and moves to
    /// the next when a connection fails or ends.
    pub relays: Vec<String>,
    /// Where the node key lives (created on first run).
    pub key_file: PathBuf,
    /// Accept any relay certificate (for a relay with a self-signed one).
    pub insecure_tls: bool,
    /// Non-public `host:port` targets the node may reach (tests only).
    pub allow_targets: Vec<String>,
    /// Most jobs at once.
    pub max_concurrency: u16,
    /// The EVM address rewards go to (registered, signed, on every connect).
    pub payout: Option<String>,
    /// Domains this node never fetches (each covers its subdomains); the
    /// relay is told, and routes around them.
    pub blocked_domains: Vec<String>,
    /// The local address to reach the relay from (the system's choice when
    /// `None`). Library only, for now for the benchmark, which spreads
    /// 100,000 nodes over 127.0.0.2 and up so that one source address does
    /// not run out of ports; `spareband-node` does not set it. Jobs' own
    /// connections are not bound.
    pub bind: Option<std::net::IpAddr>,
    /// Certificates the node trusts for targets besides the Web PKI roots,
    /// for tests and benchmarks that fetch a local https target
    /// (`spareband-node` sets it only in a development build, from
    /// `--trust-target-ca`).
    pub extra_target_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The owner's speed limits, caps and schedule.
    pub controls: owner::OwnerControls,
    /// The owner's local time; the system's when `None` (tests set another
    /// day to cross a month).
    pub clock: Option<owner::Clock>,
}

/// Why the node cannot run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The relay URL is unusable.
    #[error("relay URL: {0}")]
    RelayUrl(#[from] spareband_protocol::gateway::GatewayUrlError),
    /// The relay URL names no origin a signature can bind to.
    #[error("relay URL: {0}")]
    RelayOrigin(#[source] spareband_protocol::identity::OriginError),
    /// No relay given.
    #[error("no relay given: name at least one with --relay")]
    NoRelay,
    /// More relays than [`MAX_RELAYS`].
    #[error("{0} relays given; a node takes at most {MAX_RELAYS}")]
    TooManyRelays(usize),
    /// The key file is unusable.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// An allow-list entry is not `host:port`.
    #[error(transparent)]
    Policy(#[from] spareband_protocol::PolicyError),
    /// The payout address is not `0x` and 40 hex digits.
    #[error("payout address must be 0x followed by 40 hex digits")]
    Payout,
    /// A blocked domain is not a domain name.
    #[error("cannot block '{0}': give plain domain names (at most {max}), such as example.com", max = spareband_protocol::limits::MAX_BLOCKED_SITES)]
    BlockedDomain(String),
    /// More blocked domains than [`spareband_protocol::limits::MAX_BLOCKED_SITES`].
    #[error("cannot block '{0} domains': give plain domain names (at most {max}), such as example.com", max = spareband_protocol::limits::MAX_BLOCKED_SITES)]
    TooManyBlocked(usize),
    /// The relay refused the node for good (for example an incompatible
    /// protocol version).
    #[error("{0}")]
    Fatal(ConnectionError),
}

impl NodeError {
    /// Whether running the node again unchanged may work: never. Each is the
    /// owner's configuration or a relay that cannot serve this node's
    /// version; passing failures are retried inside [`Node::run`].
    pub fn retryable(&self) -> bool {
        match self {
            NodeError::Fatal(e) => e.retryable(),
            _ => false,
        }
    }
}

/// One relay the node may connect to.
pub(crate) struct RelayAddress {
    /// Its node gateway (`wss://…/v1/node`).
    url: url::Url,
    /// The origin the node's signed challenge binds to.
    origin: String,
}

impl RelayAddress {
    fn parse(relay: &str) -> Result<Self, NodeError> {
        let url = gateway_url(relay)?;
        let origin = canonical_origin(url.as_str()).map_err(NodeError::RelayOrigin)?;
        Ok(RelayAddress { url, origin })
    }
}

/// What every connection of the node shares.
pub(crate) struct NodeContext {
    relays: Vec<RelayAddress>,
    bind: Option<std::net::IpAddr>,
    key: SigningKey,
    max_concurrency: u16,
    client: http::HttpClient,
    connector: http::Connector,
    policy: Arc<TargetPolicy>,
    relay_tls: Arc<rustls::ClientConfig>,
    payout: Option<String>,
    blocked: Arc<Vec<String>>,
    guard: Arc<guard::HopGuard>,
    pin_file: PathBuf,
    receipts: Arc<receipts::ReceiptStats>,
    owner: Arc<owner::Owner>,
}

/// A node, ready to run.
pub struct Node {
    shared: NodeContext,
    id: NodeId,
}

/// The WebSocket URL of a relay's node gateway, from what a user may type
/// (the rule is [`spareband_protocol::gateway::gateway_url`]).
pub fn gateway_url(relay: &str) -> Result<url::Url, NodeError> {
    let gateway = spareband_protocol::gateway::gateway_url(relay)?;
    // The protocol built it with the same URL parser, so it parses again.
    url::Url::parse(&gateway).map_err(|e| {
        NodeError::RelayUrl(spareband_protocol::gateway::GatewayUrlError::Unparsable {
            input: gateway.clone(),
            reason: e.to_string(),
        })
    })
}

impl Node {
    /// Loads (or creates) the key and prepares the clients.
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        // The extension reads its relay setting with the same rule.
        let typed = config.relays.join(",");
        let list = relay_list(&typed);
        if list.len() > MAX_RELAYS {
            return Err(NodeError::TooManyRelays(list.len()));
        }
        if list.is_empty() {
            return Err(NodeError::NoRelay);
        }
        let relays = list
            .into_iter()
            .map(RelayAddress::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(p) = &config.payout {
            // The relay checks the EIP-55 checksum; the shape is checked here
            // so a typo fails at start, not silently later.
            let ok = p.len() == 42
                && p.starts_with("0x")
                && p[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(NodeError::Payout);
            }
        }
        if config.blocked_domains.len() > spareband_protocol::limits::MAX_BLOCKED_SITES {
            return Err(NodeError::TooManyBlocked(config.blocked_domains.len()));
        }
        let blocked = config
            .blocked_domains
            .iter()
            .map(|d| {
                spareband_protocol::policy::normalize_domain(d)
                    .ok_or_else(|| NodeError::BlockedDomain(d.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = keys::load_or_create(&config.key_file)?;
        let policy = Arc::new(TargetPolicy::with_allow_list(&config.allow_targets)?);
        if !config.allow_targets.is_empty() {
            warn!(allow = ?policy.allow_list(), "allow-listed targets bypass the public-address rule: use only for tests");
        }
        let id = NodeId::from_public_key(&key.verifying_key().to_bytes());
        let guard = Arc::new(guard::HopGuard::new());
        Ok(Node {
            id,
            shared: NodeContext {
                relays,
                bind: config.bind,
                key,
                max_concurrency: config.max_concurrency.max(1),
                client: http::client(policy.clone(), guard.clone(), &config.extra_target_roots),
                connector: http::connector(policy.clone(), guard.clone()),
                guard,
                policy,
                relay_tls: tls::relay_client_config(config.insecure_tls),
                payout: config.payout,
                blocked: Arc::new(blocked),
                pin_file: receipts::pin_file(&config.key_file),
                receipts: Arc::new(receipts::ReceiptStats::default()),
                owner: Arc::new(owner::Owner::new(
                    config.controls,
                    config.clock.unwrap_or_else(owner::system_clock),
                    owner::usage_file(&config.key_file),
                )),
            },
        })
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Receipt totals verified so far.
    pub fn receipts(&self) -> Arc<receipts::ReceiptStats> {
        self.shared.receipts.clone()
    }

    /// Connects and serves until `stop` is cancelled, reconnecting with
    /// jittered backoff. Returns an error only when every relay refuses the
    /// node for a reason retrying cannot fix.
    ///
    /// With several relays, a node starts at the one its id picks (so nodes
    /// spread over them) and, after a connection fails or ends, tries
    /// another one at random: a relay that dies loses its nodes evenly to
    /// the others within a reconnect delay or two, and a rolling restart
    /// does not pile every node onto one relay.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), NodeError> {
        let relays = &self.shared.relays;
        let mut at = self.id.0[0] as usize % relays.len();
        // Relays that refused this node for good, since one last served it.
        let mut refused = vec![false; relays.len()];
        let mut backoff = backoff::reconnect_backoff();
        while !stop.is_cancelled() {
            let relay = &relays[at];
            let started = tokio::time::Instant::now();
            let result = connection::run(&self.shared, relay, &stop).await;
            if started.elapsed() > RECONNECT_MAX {
                backoff.reset();
            }
            match result {
                Ok(end) => {
                    refused.iter_mut().for_each(|r| *r = false);
                    match end {
                        ConnectionEnd::Stopped => break,
                        ConnectionEnd::RelayRestarting => {
                            info!(relay = %relay.url, "the relay is restarting; reconnecting");
                            backoff.reset();
                        }
                        ConnectionEnd::Closed(why) => {
                            info!(relay = %relay.url, reason = %why, "disconnected from the relay")
                        }
                    }
                }
                Err(e) if !e.retryable() => {
                    refused[at] = true;
                    if refused.iter().all(|r| *r) {
                        return Err(NodeError::Fatal(e));
                    }
                    warn!(relay = %relay.url, error = %e, "this relay refuses the node; trying the others");
                }
                Err(e) => warn!(relay = %relay.url, error = %e, "connection failed"),
            }
            at = next_relay(at, &refused, rand::random());
            let delay = backoff::next_delay(&mut backoff);
            info!(?delay, relay = %relays[at].url, "reconnecting after a pause");
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        Ok(())
    }
}

/// The relay to try after relay `at`: with one relay, that one; otherwise
/// one of the others that has not refused the node for good, chosen by
/// `draw`, or `at` again when it is the only one left.
fn next_relay(at: usize, refused: &[bool], draw: u64) -> usize {
    let others: Vec<usize> = (0..refused.len())
        .filter(|&i| i != at && !refused[i])
        .collect();
    if others.is_empty() {
        return at;
    }
    others[(draw % others.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_relay_is_another_one_that_has_not_refused() {
        assert_eq!(next_relay(0, &[false], 7), 0);
        for draw in 0..10 {
            let n = next_relay(1, &[false, false, false], draw);
            assert!(n == 0 || n == 2);
        }
        // Both others are drawn, not always the same one.
        assert_ne!(
            next_relay(1, &[false, false, false], 0),
            next_relay(1, &[false, false, false], 1)
        );
        assert_eq!(next_relay(0, &[false, true, false], 5), 2);
        assert_eq!(next_relay(2, &[true, true, false], 5), 2);
    }

    #[test]
    fn configuration_errors_keep_their_words() {
        let e = gateway_url("ftp://relay.example").unwrap_err();
        assert_eq!(
            e.to_string(),
            "relay URL: scheme 'ftp' is not supported; use https:// or wss://"
        );
        assert!(!e.retryable());
        assert_eq!(
            gateway_url("https://relay.example").unwrap().as_str(),
            "wss://relay.example/v1/node"
        );
        assert_eq!(
            NodeError::NoRelay.to_string(),
            "no relay given: name at least one with --relay"
        );
        assert_eq!(
            NodeError::TooManyRelays(17).to_string(),
            "17 relays given; a node takes at most 16"
        );
        assert_eq!(
            NodeError::TooManyBlocked(300).to_string(),
            "cannot block '300 domains': give plain domain names (at most 256), such as example.com"
        );
        assert_eq!(
            NodeError::BlockedDomain("a b".into()).to_string(),
            "cannot block 'a b': give plain domain names (at most 256), such as example.com"
        );
    }
}
