//! The Spareband relay: holds node connections, serves the customer API,
//! routes each job to a suitable node and streams the answer back.
//!
//! The path of one request: [`api`] authenticates and validates it, [`jobs`]
//! picks a node from [`nodes::Registry`] and opens a stream on it, the
//! [`nodes::gateway`] carries the frames, and the response body streams back
//! to the customer under per-stream credit.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod cluster;
pub mod config;
pub mod conns;
pub mod error;
pub mod geo;
pub mod jobs;
pub mod keylimits;
pub mod metrics;
pub mod nodes;
pub mod origin;
pub mod peer;
pub mod pins;
pub mod proxy;
pub mod resolve;
pub mod routes;
pub mod secret;
pub mod server;
pub mod signing;
pub mod tls;

use config::Config;
use spareband_ledger::{rewards, CustomerId, Db, LedgerError, UsageWriter};
use spareband_protocol::{NodeId, TargetPolicy};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often expired pins are swept.
const PIN_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Longest a stopping relay waits for its last records to be written: past
/// it (the database is away) the records still queued are lost, logged
/// with their count, and the process ends.
pub const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// State shared by every handler.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The proxy CA `mode-fetch` mints certificates from (with
    /// `proxy_listen` set).
    pub proxy_ca: Option<proxy::ca::ProxyCa>,
    /// The database.
    pub db: Db,
    /// Connected nodes.
    pub registry: nodes::Registry,
    /// Sticky-session pins.
    pub pins: pins::Pins,
    /// GeoIP and client addresses.
    pub geo: geo::Geo,
    /// The target policy.
    pub policy: TargetPolicy,
    /// Whether the relay serves TLS (nodes sign `wss://` origins then).
    pub tls: bool,
    /// The origins nodes may sign their challenge for, fixed at start
    /// ([`origin::node_origins`]).
    pub node_origins: Vec<String>,
    /// Counters.
    pub metrics: Arc<metrics::Metrics>,
    /// Closes node connections at the end of shutdown.
    pub node_shutdown: CancellationToken,
    /// The usage ledger's batching writer.
    pub ledger: UsageWriter,
    /// The key receipts are signed with.
    pub relay_key: signing::RelayKey,
    /// Per-key rate, concurrency and quota.
    pub keys: Arc<keylimits::KeyLimits>,
    /// The relay's own DNS check.
    pub resolver: resolve::Resolver,
    /// The operator's deny list.
    pub deny: resolve::DenyList,
    /// The admin dashboard, when an admin token is configured.
    pub admin: Option<admin::Admin>,
    /// Key hash → customer, and when that was read from the database.
    auth_cache: Mutex<HashMap<String, (CustomerId, Instant)>>,
    /// This relay's view of its cluster, with `cluster_url` set (joined
    /// right after the state is built, as it reports the node count).
    pub cluster: std::sync::OnceLock<cluster::Cluster>,
}

impl AppState {
    /// A key's customer, if read from the database less than
    /// [`api::KEY_CACHE_TTL`] ago.
    pub(crate) fn auth_cache_get(&self, hash: &str) -> Option<CustomerId> {
        self.auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .filter(|(_, read)| read.elapsed() < api::KEY_CACHE_TTL)
            .map(|(id, _)| *id)
    }

    pub(crate) fn auth_cache_put(&self, hash: String, id: CustomerId, max: usize) {
        let mut c = self.auth_cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= max {
            c.clear();
        }
        c.insert(hash, (id, Instant::now()));
    }

    /// Disables a customer and forgets its cached key, so its next request
    /// is refused. (A request already past the key check finishes.)
    pub async fn disable_customer(&self, id: CustomerId) -> Result<(), LedgerError> {
        self.db.disable_customer(id).await?;
        self.auth_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (c, _)| *c != id);
        Ok(())
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The data dir could not be created.
    #[error("cannot create data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] LedgerError),
    /// GeoIP database failure.
    #[error(transparent)]
    Geo(#[from] geo::GeoError),
    /// The proxy CA could not be read or made.
    #[error(transparent)]
    ProxyCa(#[from] proxy::ca::CaError),
    /// TLS setup failure.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The deny list or hosts file is unusable.
    #[error(transparent)]
    List(#[from] resolve::ListError),
    /// The receipt-signing key is unusable.
    #[error(transparent)]
    SigningKey(#[from] signing::SigningKeyError),
    /// The origins nodes sign for could not be fixed.
    #[error(transparent)]
    Origin(#[from] origin::OriginError),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// `cluster_url` is unusable.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
}

/// A relay that is running.
pub struct RunningRelay {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The proxy port's bound address, with `proxy_listen` set.
    pub proxy_addr: Option<SocketAddr>,
    /// The SOCKS5 port's bound address, with `socks_listen` set.
    pub socks_addr: Option<SocketAddr>,
    /// Shared state (for tests and tools in the same process).
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningRelay {
    /// `https://addr` or `http://addr`.
    pub fn base_url(&self) -> String {
        let scheme = if self.state.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A token that starts a graceful shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight work finish within the grace period,
    /// closes node connections and the database.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the relay has shut down (after the token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Validates the config, opens everything and starts serving.
pub async fn start(config: Config) -> Result<RunningRelay, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    let database = config.database();
    let db = Db::connect(&database).await?;
    tracing::info!(%database, "ledger opened");
    let relay_key = signing::load_or_create(&config.data_dir)?;
    // The nodes this relay held before it stopped; other relays sharing the
    // database keep theirs.
    db.mark_offline(&relay_key.holder()).await?;
    let resolver = resolve::Resolver::new(config.hosts_file.as_deref())?;
    let deny = resolve::DenyList::from_file(config.deny_list.as_deref())?;
    let geo = geo::Geo::new(config.geoip_db.as_deref(), &config.trusted_proxies)?
        .with_city_and_asn(
            config.geoip_city_db.as_deref(),
            config.geoip_asn_db.as_deref(),
        )?;
    let tls = if config.insecure_http {
        None
    } else {
        Some(tls::server_config(
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
            &config.data_dir,
        )?)
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let proxy_listener = match config.proxy_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| StartError::Bind(at, e))?,
        ),
        None => None,
    };
    let proxy_addr = proxy_listener.as_ref().and_then(|l| l.local_addr().ok());
    let socks_listener = match config.socks_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| StartError::Bind(at, e))?,
        ),
        None => None,
    };
    let socks_addr = socks_listener.as_ref().and_then(|l| l.local_addr().ok());
    if socks_addr.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(addr = ?socks_addr, "the SOCKS5 port takes API keys in clear; keep it on a private network");
    }
    if proxy_addr.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(addr = ?proxy_addr, "the proxy port speaks plain HTTP: API keys reach it in clear; keep it on a private network");
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let policy = config.policy()?;
    let cert_names = tls.as_ref().map_or(&[][..], |t| &t.names[..]);
    let node_origins = origin::node_origins(&config, addr, cert_names)?;
    let tls = tls.map(|t| t.config);
    let node_shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        db: db.clone(),
        registry: nodes::Registry::with_limits(
            metrics.clone(),
            config.node_site_per_minute,
            config.earning_nodes_per_ip,
        )
        .with_shutdown(node_shutdown.clone()),
        pins: pins::Pins::new(config.session_ttl()),
        geo,
        policy,
        tls: tls.is_some(),
        node_origins,
        metrics,
        node_shutdown: node_shutdown.clone(),
        ledger: UsageWriter::start_bounded(db.clone(), config.epoch(), config.ledger_queue_max),
        relay_key,
        keys: keylimits::KeyLimits::new(config.key_limits()),
        resolver,
        deny,
        admin: config
            .admin_token
            .clone()
            .map(|t| admin::Admin::new(admin::auth::AdminAuth::new(t))),
        auth_cache: Mutex::new(HashMap::new()),
        cluster: std::sync::OnceLock::new(),
        proxy_ca: match config.proxy_listen {
            Some(_) => Some(proxy::ca::ProxyCa::load_or_create(&config.data_dir)?),
            None => None,
        },
        config,
    });
    if let Some(url) = &state.config.cluster_url {
        let me = cluster::Member {
            id: hex::encode(rand::random::<[u8; 8]>()),
            // The hop speaks HTTP/2 to the origin nodes sign for, which may
            // be written as a WebSocket URL.
            url: match state.config.public_url.as_deref() {
                Some(u) => match u.split_once("://") {
                    Some(("wss", rest)) => format!("https://{rest}"),
                    Some(("ws", rest)) => format!("http://{rest}"),
                    _ => u.to_string(),
                },
                None => format!("{}://{addr}", if state.tls { "https" } else { "http" }),
            },
            holder: state.relay_key.holder(),
            nodes: 0,
            offers: Vec::new(),
            leaving: false,
        };
        let (weak, weak_pins) = (Arc::downgrade(&state), Arc::downgrade(&state));
        let weak_keys = Arc::downgrade(&state);
        let (weak_claims, weak_heard, weak_gone) = (
            Arc::downgrade(&state),
            Arc::downgrade(&state),
            Arc::downgrade(&state),
        );
        let (keys, keys_in) = (state.keys.clone(), state.keys.clone());
        let db_gone = state.db.clone();
        let hooks = cluster::Hooks {
            load: Box::new(move || {
                weak.upgrade().map_or((0, Vec::new()), |s| {
                    let all = s.registry.all();
                    (all.len() as u64, cluster::directory::offers_of(&all))
                })
            }),
            on_pin: Box::new(move |p| {
                if let (Some(s), Some(node)) = (weak_pins.upgrade(), NodeId::parse(&p.node)) {
                    let ttl = p
                        .ttl_secs
                        .map(|t| Duration::from_secs(t.min(s.config.max_session_ttl_secs)));
                    s.pins
                        .pin_elsewhere(p.customer, &p.session, node, p.relay, ttl);
                }
            }),
            admitted: Box::new(move || {
                if let Some(c) = weak_keys.upgrade().and_then(|s| s.cluster.get().cloned()) {
                    keys.set_relays(c.members().len());
                }
                keys.unshared()
            }),
            on_admitted: Box::new(move |n| keys_in.admitted_elsewhere(&n.relay, &n.keys)),
            claims: Box::new(move || {
                let Some(s) = weak_claims.upgrade() else {
                    return Vec::new();
                };
                // Claims of relays no longer heard from lapse here.
                let changed = s.registry.expire_claims();
                let claims = s.registry.claims();
                tokio::spawn(async move { nodes::payouts::earning_changed(&s, changed).await });
                claims
            }),
            on_claims: Box::new(move |n| {
                if let Some(s) = weak_heard.upgrade() {
                    let changed = s.registry.hear_claims(&n.relay, &n.claims, &n.released);
                    tokio::spawn(async move { nodes::payouts::earning_changed(&s, changed).await });
                }
            }),
            on_gone: Box::new(move |m| {
                if let Some(s) = weak_gone.upgrade() {
                    let changed = s.registry.forget_claims_of(&m.id);
                    tokio::spawn(async move { nodes::payouts::earning_changed(&s, changed).await });
                }
                // A relay gone (killed, cut off, or leaving): its
                // nodes are offline until they connect again, here or to
                // another relay. Every member does this; it is idempotent.
                let db = db_gone.clone();
                tokio::spawn(async move {
                    if let Err(e) = db.mark_offline(&m.holder).await {
                        tracing::warn!(error = %e, "could not mark a gone relay's nodes offline");
                    }
                });
            }),
        };
        let secret = state.config.cluster_secret.clone().ok_or_else(|| {
            config::ConfigError::Invalid("cluster_url needs cluster_secret".into())
        })?;
        let joined =
            cluster::Cluster::join(&url.0, me, secret, hooks, node_shutdown.clone()).await?;
        let _ = state.cluster.set(joined);
    }
    let shutdown = CancellationToken::new();
    let app = routes::app(state.clone());
    let task = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let sweeper = {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut t = tokio::time::interval(PIN_SWEEP_INTERVAL);
                    loop {
                        t.tick().await;
                        state.pins.sweep();
                    }
                })
            };
            let sampler = {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut t = tokio::time::interval(admin::rate::RATE_SAMPLE_INTERVAL);
                    loop {
                        t.tick().await;
                        if let Some(a) = &state.admin {
                            a.rate.sample(state.metrics.jobs_total());
                        }
                    }
                })
            };
            let closer = {
                let state = state.clone();
                tokio::spawn(async move {
                    let rate = state.config.reward_per_gib.0;
                    let mut t = tokio::time::interval(rewards::CLOSE_CHECK_INTERVAL);
                    loop {
                        t.tick().await;
                        match rewards::close_due(&state.db, state.config.epoch(), rate).await {
                            Ok(closed) => {
                                let any = !closed.is_empty();
                                for e in closed {
                                    tracing::info!(epoch = e.epoch, total_amount = %e.total_amount, root = ?e.root, "epoch closed");
                                }
                                if any {
                                    // Every connected node learns what it can claim.
                                    for node in state.registry.all() {
                                        nodes::payouts::send_terms(&state, &node).await;
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "closing epochs failed; will retry")
                            }
                        }
                    }
                })
            };
            let limits = conns::ConnLimits::new(&state.config, state.metrics.clone());
            let socks = socks_listener.map(|l| {
                tokio::spawn(proxy::socks::serve(
                    l,
                    state.clone(),
                    limits.clone(),
                    shutdown.clone(),
                ))
            });
            let proxy = proxy_listener.map(|l| {
                server::serve(
                    l,
                    None,
                    proxy::router().with_state(state.clone()),
                    server::Bounds {
                        limits: limits.clone(),
                        metrics: state.metrics.clone(),
                    },
                    shutdown.clone(),
                    state.config.shutdown_grace(),
                )
            });
            let api = server::serve(
                listener,
                tls,
                app,
                server::Bounds {
                    limits,
                    metrics: state.metrics.clone(),
                },
                shutdown,
                state.config.shutdown_grace(),
            );
            match proxy {
                Some(p) => {
                    tokio::join!(api, p);
                }
                None => api.await,
            }
            if let Some(s) = socks {
                let _ = s.await;
            }
            closer.abort();
            sampler.abort();
            // Customer connections are done (or out of time): send the
            // receipts still waiting for their batch, then close nodes, which
            // reconnect to the next relay process.
            for node in state.registry.all() {
                node.flush_receipts(&state.relay_key.0);
            }
            state.node_shutdown.cancel();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while !state.registry.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sweeper.abort();
            // Every finished job's record is written before the process
            // ends, unless the database stays away past a bound: a relay
            // asked to stop must stop.
            if let Err(left) = state.ledger.close_within(SHUTDOWN_FLUSH_LIMIT).await {
                tracing::error!(
                    records = left,
                    limit = ?SHUTDOWN_FLUSH_LIMIT,
                    "the ledger could not be written before shutting down; these records are lost"
                );
            }
            if tokio::time::timeout(SHUTDOWN_FLUSH_LIMIT, state.db.close())
                .await
                .is_err()
            {
                tracing::warn!("the database connections did not close in time");
            }
        })
    };
    tracing::info!(%addr, tls = state.tls, node_origins = ?state.node_origins, "relay listening");
    if let Some(p) = proxy_addr {
        tracing::info!(addr = %p, "proxy listening");
    }
    if let Some(p) = socks_addr {
        tracing::info!(addr = %p, "SOCKS5 listening");
    }
    Ok(RunningRelay {
        addr,
        proxy_addr,
        socks_addr,
        state,
        shutdown,
        task,
    })
}
