//! A cluster of relays over NATS. Each relay announces itself every
//! [`HEARTBEAT`] on [`MEMBERS_SUBJECT`], with a summary of the nodes it can
//! offer ([`directory`]), and keeps the relays it has heard from within
//! [`MEMBER_TTL`]. Sticky sessions are shared on [`PINS_SUBJECT`], so a
//! session keeps its node whichever relay the customer calls. Jobs go to
//! the relay holding their node over HTTP/2 ([`hop`]), never through NATS.
//!
//! A relay that loses NATS keeps serving its own nodes and says so
//! (`/healthz`); the client reconnects by itself, without end, and the
//! relay counts again as soon as it does.
//!
//! - [`directory`]: what each relay offers, and which relay fits a job.
//! - [`hop`]: the relay-to-relay job, both sides.
//!
//! Per-key admissions go on [`KEYS_SUBJECT`] every [`KEY_SYNC`], so a key's
//! rate, concurrency and quota hold over the cluster (see
//! [`crate::keylimits`]).
//!
//! Earning nodes go on [`EARNING_SUBJECT`] as they change, all of them again
//! every [`crate::nodes::earning::RESEND_EVERY`] and when a relay joins, so at most
//! `earning_nodes_per_ip` nodes of one address earn over the cluster (see
//! [`crate::nodes::earning`]).

pub mod directory;
pub mod hop;

use directory::Offer;
use spareband_ledger::CustomerId;
use spareband_protocol::NodeId;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often a relay announces itself.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A relay not heard from for this long is no longer counted: three missed
/// heartbeats, so one lost message does not drop it.
pub const MEMBER_TTL: Duration = Duration::from_secs(6);
/// The subject relays announce themselves on.
pub const MEMBERS_SUBJECT: &str = "spareband.relays";
/// The subject relays share sticky-session pins on.
pub const PINS_SUBJECT: &str = "spareband.pins";
/// Largest announcement read; anything longer is not a relay of ours. A
/// relay's offers are one entry per country and node kind: about 500 at
/// most, some 60 bytes each.
const MAX_ANNOUNCEMENT_BYTES: usize = 64 * 1024;
/// Largest pin message read.
const MAX_PIN_BYTES: usize = 1024;
/// The subject relays share per-key admissions on.
pub const KEYS_SUBJECT: &str = "spareband.keys";
/// How often a relay tells the others what it admitted per key: a key's
/// rate holds over the cluster, ahead by at most what the relays admit
/// within this interval.
pub const KEY_SYNC: Duration = Duration::from_millis(100);
/// Keys per admissions message: some 90 bytes each in JSON, well under
/// NATS's default 1 MiB payload.
const KEYS_PER_NOTE: usize = 1000;
/// Largest admissions message read.
const MAX_KEY_NOTE_BYTES: usize = 128 * 1024;
/// The subject relays share their earning nodes on.
pub const EARNING_SUBJECT: &str = "spareband.earning";
/// Claims per earning message: some 110 bytes each in JSON.
const CLAIMS_PER_NOTE: usize = 1000;
/// Largest earning message read.
const MAX_EARNING_NOTE_BYTES: usize = 256 * 1024;

/// What a relay says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Random per process: a restarted relay is a new member.
    pub id: String,
    /// Where customers and nodes reach it (its public URL, or its listen
    /// address).
    pub url: String,
    /// Its lasting name (its receipt key, hex), the same after a restart:
    /// what the ledger's `nodes.relay` holds.
    #[serde(default)]
    pub holder: String,
    /// Nodes connected to it.
    pub nodes: u64,
    /// What its nodes can take now.
    #[serde(default)]
    pub offers: Vec<Offer>,
    /// Whether it is leaving (sent once on shutdown).
    #[serde(default)]
    pub leaving: bool,
}

/// Why a relay cannot take part in a cluster. Only a bad URL is final; the
/// connection itself is retried in the background for as long as the relay
/// runs.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `cluster_url` is not a NATS address.
    #[error("cluster_url: {0}")]
    BadUrl(String),
}

impl ClusterError {
    /// Whether trying again unchanged may work: never, it is the config.
    pub fn retryable(&self) -> bool {
        false
    }
}

/// The `cluster_url` setting. It may carry a password, so it never prints
/// one: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClusterUrl(pub String);

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self.0.split(',').map(|u| redact(u.trim())).collect();
        write!(f, "ClusterUrl({})", shown.join(","))
    }
}

/// A session pinned to a node by one relay, as the others learn it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinNote {
    /// The relay that holds the node.
    pub relay: String,
    /// The customer whose session it is.
    pub customer: CustomerId,
    /// The session's name.
    pub session: String,
    /// The node (hex id).
    pub node: String,
    /// The session's lifetime in seconds, when the customer chose one.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// One relay's admissions per key since its last note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyNote {
    /// The relay that admitted them.
    pub relay: String,
    /// Per key: (customer, admitted since the last note, in flight now).
    pub keys: Vec<crate::keylimits::KeyReport>,
}

/// A relay's earning nodes: new claims, nodes that no longer earn, or a
/// request that every relay send all its claims again (a relay that has
/// just joined).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EarningNote {
    /// The relay that sent it.
    pub relay: String,
    /// Its nodes that earn.
    #[serde(default)]
    pub claims: Vec<crate::nodes::earning::Claim>,
    /// Its nodes that no longer earn (hex ids).
    #[serde(default)]
    pub released: Vec<String>,
    /// Whether the sender asks for every claim.
    #[serde(default)]
    pub sync: bool,
}

/// What a relay tells the cluster and what it does with what it hears.
pub struct Hooks {
    /// Its node count and offers, read at each heartbeat.
    pub load: Box<dyn Fn() -> (u64, Vec<Offer>) + Send + Sync>,
    /// A pin another relay made.
    pub on_pin: Box<dyn Fn(PinNote) + Send + Sync>,
    /// Its admissions per key since the last call, read every [`KEY_SYNC`].
    pub admitted: Box<dyn Fn() -> Vec<crate::keylimits::KeyReport> + Send + Sync>,
    /// Another relay's admissions.
    pub on_admitted: Box<dyn Fn(KeyNote) + Send + Sync>,
    /// All its earning nodes, read every
    /// [`crate::nodes::earning::RESEND_EVERY`] and when a relay asks.
    pub claims: Box<dyn Fn() -> Vec<crate::nodes::earning::Claim> + Send + Sync>,
    /// Another relay's earning claims and releases.
    pub on_claims: Box<dyn Fn(EarningNote) + Send + Sync>,
    /// A relay gone: no longer heard from within [`MEMBER_TTL`], or just
    /// announced as leaving.
    pub on_gone: Box<dyn Fn(Member) + Send + Sync>,
}

impl Hooks {
    /// A relay that always reports `nodes` nodes, offers nothing and
    /// ignores pins (for tests of membership).
    pub fn fixed(nodes: u64) -> Self {
        Hooks {
            load: Box::new(move || (nodes, Vec::new())),
            on_pin: Box::new(|_| {}),
            admitted: Box::new(Vec::new),
            on_admitted: Box::new(|_| {}),
            claims: Box::new(Vec::new),
            on_claims: Box::new(|_| {}),
            on_gone: Box::new(|_| {}),
        }
    }
}

/// This relay's view of the cluster.
#[derive(Clone)]
pub struct Cluster {
    me: String,
    client: async_nats::Client,
    seen: Arc<Mutex<HashMap<String, (Member, Instant)>>>,
    hop: hop::HopClient,
    hooks: Arc<Hooks>,
}

/// A NATS URL with its credentials replaced, for logs and errors: the
/// password of `user:password@`, and a token given alone (`token@host`, as
/// NATS allows) in the user's place.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            } else if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

impl Cluster {
    /// Joins the cluster at `url` (`nats://host:port`, several separated by
    /// commas). Returns at once: the connection is made, and remade after a
    /// loss, in the background. `secret` is presented to peers on a job hop.
    /// On `shutdown` the relay says it is leaving.
    pub async fn join(
        url: &str,
        me: Member,
        secret: crate::secret::ClusterSecret,
        hooks: Hooks,
        shutdown: CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        for part in url.split(',') {
            match url::Url::parse(part.trim()) {
                Ok(u) if matches!(u.scheme(), "nats" | "tls") => {}
                _ => {
                    return Err(ClusterError::BadUrl(format!(
                        "{} is not a nats:// address",
                        redact(part.trim())
                    )))
                }
            }
        }
        let shown = url.split(',').map(redact).collect::<Vec<_>>().join(",");
        let client = async_nats::ConnectOptions::new()
            .name(format!("spareband-relay {}", me.id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let shown = shown.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => info!(url = %shown, "cluster: connected to NATS"),
                        async_nats::Event::Disconnected => warn!(url = %shown, "cluster: lost NATS; serving this relay's own nodes"),
                        other => debug!(event = %other, "cluster: NATS event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| ClusterError::BadUrl(e.to_string()))?;
        let cluster = Cluster {
            me: me.id.clone(),
            client,
            seen: Arc::new(Mutex::new(HashMap::new())),
            hop: hop::HopClient::new(secret),
            hooks: Arc::new(hooks),
        };
        cluster.note(me.clone());
        let hooks = cluster.hooks.clone();
        tokio::spawn(cluster.clone().listen(
            MEMBERS_SUBJECT,
            MAX_ANNOUNCEMENT_BYTES,
            shutdown.clone(),
            |c, m: Member| {
                if m.id != c.me {
                    if m.leaving && c.peer(&m.id).is_some() {
                        (c.hooks.on_gone)(m.clone());
                    }
                    c.note(m);
                }
            },
        ));
        let on_pin = hooks.clone();
        tokio::spawn(cluster.clone().listen(
            PINS_SUBJECT,
            MAX_PIN_BYTES,
            shutdown.clone(),
            move |c, p: PinNote| {
                if p.relay != c.me {
                    (on_pin.on_pin)(p);
                }
            },
        ));
        let on_keys = hooks.clone();
        tokio::spawn(cluster.clone().listen(
            KEYS_SUBJECT,
            MAX_KEY_NOTE_BYTES,
            shutdown.clone(),
            move |c, n: KeyNote| {
                if n.relay != c.me {
                    (on_keys.on_admitted)(n);
                }
            },
        ));
        tokio::spawn(cluster.clone().share_keys(hooks.clone(), shutdown.clone()));
        tokio::spawn(cluster.clone().earning(hooks.clone(), shutdown.clone()));
        tokio::spawn(cluster.clone().announce(me, hooks, shutdown));
        Ok(cluster)
    }

    /// This relay's id in the cluster.
    pub fn id(&self) -> &str {
        &self.me
    }

    /// The client jobs go to other relays with.
    pub fn hop(&self) -> &hop::HopClient {
        &self.hop
    }

    /// A live member other than this relay.
    pub fn peer(&self, id: &str) -> Option<Member> {
        self.members()
            .into_iter()
            .find(|m| m.id == id && m.id != self.me)
    }

    /// A live relay, other than this one and those in `exclude`, with free
    /// slots for a job limited to `country` that browser nodes may take or
    /// not, drawn at random in proportion to those slots (so load spreads
    /// as the free capacity does, and relays announcing the same do not all
    /// pick the same peer); none when no other relay offers one.
    pub fn relay_for(
        &self,
        country: Option<&str>,
        browser_ok: bool,
        exclude: &[String],
    ) -> Option<Member> {
        self.draw(exclude, |m| {
            directory::free_for(&m.offers, country, browser_ok)
        })
    }

    /// Another relay holding a node that fits, free or busy (weighted by
    /// such nodes), for a job this relay has no node for at all: that relay
    /// queues it for a slot as it would its own customers' jobs, rather than
    /// this one refusing it while the cluster is merely busy.
    pub fn relay_holding(
        &self,
        country: Option<&str>,
        browser_ok: bool,
        exclude: &[String],
    ) -> Option<Member> {
        self.draw(exclude, |m| {
            directory::nodes_for(&m.offers, country, browser_ok)
        })
    }

    /// A random other relay, not in `exclude`, weighted by `weight`.
    fn draw(&self, exclude: &[String], weight: impl Fn(&Member) -> u32) -> Option<Member> {
        let offered: Vec<(u64, Member)> = self
            .members()
            .into_iter()
            .filter(|m| m.id != self.me && !exclude.contains(&m.id))
            .map(|m| (weight(&m) as u64, m))
            .filter(|(w, _)| *w > 0)
            .collect();
        let total: u64 = offered.iter().map(|(w, _)| w).sum();
        if total == 0 {
            return None;
        }
        let mut draw = rand::random::<u64>() % total;
        for (w, m) in offered {
            if draw < w {
                return Some(m);
            }
            draw -= w;
        }
        None
    }

    /// Stops counting relay `id` until it is heard from again: a peer that
    /// cannot be reached is not offered more jobs for the rest of its time
    /// to live (a relay killed without saying so).
    pub fn forget(&self, id: &str) {
        if id != self.me {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.remove(id);
        }
    }

    /// Tells the other relays that `session` of `customer` is pinned to
    /// `node`, held by this relay. Sent in the background: a lost message
    /// only means the next relay pins the session afresh.
    pub fn share_pin(
        &self,
        customer: CustomerId,
        session: &str,
        node: NodeId,
        ttl: Option<Duration>,
    ) {
        let note = PinNote {
            relay: self.me.clone(),
            customer,
            session: session.to_string(),
            node: node.to_string(),
            ttl_secs: ttl.map(|t| t.as_secs()),
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            let body = serde_json::to_vec(&note).unwrap_or_default();
            if let Err(e) = client.publish(PINS_SUBJECT, body.into()).await {
                debug!(error = %e, "cluster: pin not shared");
            }
        });
    }

    /// Tells the other relays which of this relay's nodes now earn and
    /// which no longer do. Sent in the background: a lost message is
    /// mended by the next full resend.
    pub fn share_earning(&self, claims: Vec<crate::nodes::earning::Claim>, released: Vec<String>) {
        if claims.is_empty() && released.is_empty() {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            cluster
                .publish_earning(EarningNote {
                    relay: cluster.me.clone(),
                    claims,
                    released,
                    sync: false,
                })
                .await;
        });
    }

    /// Publishes `note`, its claims split so no message passes
    /// [`MAX_EARNING_NOTE_BYTES`].
    async fn publish_earning(&self, note: EarningNote) {
        let mut notes = Vec::new();
        let mut claims = note.claims.into_iter().peekable();
        loop {
            let chunk: Vec<_> = claims.by_ref().take(CLAIMS_PER_NOTE).collect();
            let last = claims.peek().is_none();
            notes.push(EarningNote {
                relay: note.relay.clone(),
                claims: chunk,
                released: if last {
                    note.released.clone()
                } else {
                    Vec::new()
                },
                sync: note.sync && last,
            });
            if last {
                break;
            }
        }
        for n in notes {
            let body = serde_json::to_vec(&n).unwrap_or_default();
            if let Err(e) = self.client.publish(EARNING_SUBJECT, body.into()).await {
                debug!(error = %e, "cluster: earning not shared");
            }
        }
    }

    /// Shares earning nodes: asks every relay for its claims on joining,
    /// answers such requests, hands the others' claims to the relay, and
    /// sends all of this relay's claims every
    /// [`crate::nodes::earning::RESEND_EVERY`].
    async fn earning(self, hooks: Arc<Hooks>, shutdown: CancellationToken) {
        let mut sub = match self.client.subscribe(EARNING_SUBJECT).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cluster: cannot subscribe to earning claims");
                return;
            }
        };
        // Subscribed first, so no answer to the request is missed.
        self.publish_earning(EarningNote {
            relay: self.me.clone(),
            claims: (hooks.claims)(),
            sync: true,
            ..EarningNote::default()
        })
        .await;
        let mut tick = tokio::time::interval(crate::nodes::earning::RESEND_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let claims = (hooks.claims)();
                    if self.connected() {
                        self.publish_earning(EarningNote {
                            relay: self.me.clone(),
                            claims,
                            ..EarningNote::default()
                        })
                        .await;
                    }
                    continue;
                }
                m = futures_util::StreamExt::next(&mut sub) => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            if msg.payload.len() > MAX_EARNING_NOTE_BYTES {
                continue;
            }
            let note: EarningNote = match serde_json::from_slice(&msg.payload) {
                Ok(n) => n,
                Err(e) => {
                    debug!(error = %e, "cluster: an earning message that is not a relay's");
                    continue;
                }
            };
            if note.relay == self.me {
                continue;
            }
            let asked = note.sync;
            (hooks.on_claims)(note);
            if asked {
                self.publish_earning(EarningNote {
                    relay: self.me.clone(),
                    claims: (hooks.claims)(),
                    ..EarningNote::default()
                })
                .await;
            }
        }
    }

    /// Whether the relay is connected to NATS now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The relays heard from within [`MEMBER_TTL`], this one included,
    /// sorted by id.
    pub fn members(&self) -> Vec<Member> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        seen.retain(|id, (m, at)| {
            let keep = *id == self.me || (!m.leaving && now.duration_since(*at) < MEMBER_TTL);
            if !keep && !m.leaving {
                gone.push(m.clone());
            }
            keep
        });
        let mut list: Vec<Member> = seen.values().map(|(m, _)| m.clone()).collect();
        drop(seen);
        for m in gone {
            info!(relay = %m.id, url = %m.url, "cluster: a relay stopped announcing itself");
            (self.hooks.on_gone)(m);
        }
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn note(&self, m: Member) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(m.id.clone(), (m, Instant::now()));
    }

    /// Hands each message on `subject` of at most `max` bytes that parses
    /// as a `T` to `take`, until shutdown. The subscription survives
    /// reconnects: the client subscribes again by itself.
    async fn listen<T: serde::de::DeserializeOwned>(
        self,
        subject: &'static str,
        max: usize,
        shutdown: CancellationToken,
        take: impl Fn(&Cluster, T),
    ) {
        let mut sub = match self.client.subscribe(subject).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, subject, "cluster: cannot subscribe");
                return;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = futures_util::StreamExt::next(&mut sub) => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            if msg.payload.len() > max {
                continue;
            }
            match serde_json::from_slice::<T>(&msg.payload) {
                Ok(t) => take(&self, t),
                Err(e) => debug!(error = %e, subject, "cluster: a message that is not a relay's"),
            }
        }
    }

    /// Every [`KEY_SYNC`], tells the others what this relay admitted.
    async fn share_keys(self, hooks: Arc<Hooks>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(KEY_SYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let keys = (hooks.admitted)();
            if !self.connected() {
                // Cut from NATS: this relay's admissions are its own.
                continue;
            }
            for chunk in keys.chunks(KEYS_PER_NOTE) {
                let note = KeyNote {
                    relay: self.me.clone(),
                    keys: chunk.to_vec(),
                };
                let body = serde_json::to_vec(&note).unwrap_or_default();
                if let Err(e) = self.client.publish(KEYS_SUBJECT, body.into()).await {
                    debug!(error = %e, "cluster: admissions not shared");
                }
            }
        }
    }

    async fn announce(self, mut me: Member, hooks: Arc<Hooks>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            (me.nodes, me.offers) = (hooks.load)();
            self.note(me.clone());
            // Relays gone silent are noticed here at the latest.
            self.members();
            if self.connected() {
                self.publish(&me).await;
            }
        }
        me.leaving = true;
        me.offers.clear();
        self.publish(&me).await;
        let _ = self.client.flush().await;
    }

    async fn publish(&self, me: &Member) {
        let body = serde_json::to_vec(me).unwrap_or_default();
        if let Err(e) = self.client.publish(MEMBERS_SUBJECT, body.into()).await {
            debug!(error = %e, "cluster: heartbeat not sent");
        }
    }
}
