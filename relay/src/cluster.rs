//! Membership of a cluster of relays over NATS (issue 14, its first part):
//! each relay announces itself every [`HEARTBEAT`] on [`MEMBERS_SUBJECT`] and
//! keeps the relays it has heard from within [`MEMBER_TTL`]. A relay that
//! loses NATS keeps serving its own nodes and says so (`/healthz`); the
//! client reconnects by itself, without end, and the relay counts again as
//! soon as it does.
//!
//! Routing across relays, shared limits and sessions are not built yet: a
//! member only knows who else is there and how many nodes each holds.

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
/// Largest announcement read; anything longer is not a relay of ours.
const MAX_ANNOUNCEMENT_BYTES: usize = 4096;

/// What a relay says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Random per process: a restarted relay is a new member.
    pub id: String,
    /// Where customers and nodes reach it (its public URL, or its listen
    /// address).
    pub url: String,
    /// Nodes connected to it.
    pub nodes: u64,
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

/// This relay's view of the cluster.
#[derive(Clone)]
pub struct Cluster {
    me: String,
    client: async_nats::Client,
    seen: Arc<Mutex<HashMap<String, (Member, Instant)>>>,
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
    /// loss, in the background. `nodes` reports this relay's node count for
    /// each heartbeat. On `shutdown` the relay says it is leaving.
    pub async fn join(
        url: &str,
        me: Member,
        nodes: impl Fn() -> u64 + Send + 'static,
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
        };
        cluster.note(me.clone());
        tokio::spawn(cluster.clone().listen(shutdown.clone()));
        tokio::spawn(cluster.clone().announce(me, nodes, shutdown));
        Ok(cluster)
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
        seen.retain(|id, (m, at)| {
            *id == self.me || (!m.leaving && now.duration_since(*at) < MEMBER_TTL)
        });
        let mut list: Vec<Member> = seen.values().map(|(m, _)| m.clone()).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn note(&self, m: Member) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(m.id.clone(), (m, Instant::now()));
    }

    async fn listen(self, shutdown: CancellationToken) {
        // The subscription survives reconnects: the client subscribes again.
        let mut sub = match self.client.subscribe(MEMBERS_SUBJECT).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cluster: cannot subscribe to the member list");
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
            if msg.payload.len() > MAX_ANNOUNCEMENT_BYTES {
                continue;
            }
            match serde_json::from_slice::<Member>(&msg.payload) {
                Ok(m) if m.id != self.me => self.note(m),
                Ok(_) => {}
                Err(e) => debug!(error = %e, "cluster: an announcement that is not a relay's"),
            }
        }
    }

    async fn announce(self, mut me: Member, nodes: impl Fn() -> u64, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            me.nodes = nodes();
            self.note(me.clone());
            if self.connected() {
                self.publish(&me).await;
            }
        }
        me.leaving = true;
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
