//! Test support for cross-component tests: a local target server, an
//! in-process relay on a port-0 loopback socket (one that can be killed like
//! a process too), native nodes that can be killed like a process, and a
//! customer client. Everything talks over real
//! sockets on 127.0.0.1.
//!
//! The ledger backend is a matrix: with `SPAREBAND_TEST_DB=postgres`, every
//! relay gets a fresh database on this test binary's private PostgreSQL
//! server (see `spareband-test-postgres`), otherwise its SQLite file in its
//! data dir. `scripts/test.sh` runs the e2e tests both ways.
#![allow(missing_docs)]

pub mod customer;
pub mod nats;
pub mod target;

use spareband_ledger::DatabaseUrl;
use spareband_node::{Node, NodeConfig};
use spareband_protocol::NodeId;
use spareband_relay::config::Config;
use spareband_relay::RunningRelay;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The GeoIP test database in the repository (tests/fixtures/geoip).
pub fn geoip_fixture() -> PathBuf {
    geoip_test_db("Country")
}

/// One of the GeoLite2 test databases (`Country`, `City`, `ASN`) in
/// tests/fixtures/geoip.
pub fn geoip_test_db(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/geoip/GeoLite2-{kind}-Test.mmdb"))
}

/// The variable that picks the ledger backend of every test relay.
pub const TEST_DB_VAR: &str = "SPAREBAND_TEST_DB";

/// The database a new test relay gets: a fresh PostgreSQL database when
/// `SPAREBAND_TEST_DB=postgres`, else none (SQLite in its data dir).
///
/// # Panics
/// On any other value of the variable, or when PostgreSQL cannot start.
pub async fn test_database() -> Option<DatabaseUrl> {
    match std::env::var(TEST_DB_VAR).as_deref() {
        Ok("postgres") => {
            let url = spareband_test_postgres::PgServer::shared()
                .fresh_database()
                .await
                .expect("a fresh PostgreSQL database");
            Some(DatabaseUrl::parse(&url).expect("test database URL"))
        }
        Ok("sqlite") | Ok("") | Err(_) => None,
        Ok(other) => panic!("{TEST_DB_VAR} is sqlite or postgres, not {other}"),
    }
}

/// A relay in this process, with its data in a temp dir.
pub struct TestRelay {
    pub relay: Option<RunningRelay>,
    pub dir: tempfile::TempDir,
    /// Its ledger: for a test that opens it as another process would.
    pub database: DatabaseUrl,
    pub key: String,
    pub base: String,
    /// Its own runtime, for a relay started with [`TestRelay::start_killable`].
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestRelay {
    /// As [`TestRelay::start_with`], on a runtime of its own, so that
    /// [`TestRelay::kill`] drops every task and socket at once, as `kill -9`
    /// would: nothing is flushed, no node or peer is told.
    pub async fn start_killable(
        allow: &[String],
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Self {
        let allow = allow.to_vec();
        // Started by `block_on` on a thread of its own: the relay's start
        // future is not `Send` for every lifetime (sqlx), so it cannot be
        // spawned onto the runtime from here.
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("relay runtime");
            let mut relay = runtime.block_on(TestRelay::start_with(&allow, adjust));
            relay.runtime = Some(runtime);
            relay
        })
        .await
        .expect("relay starts")
    }

    /// Kills a relay started with [`TestRelay::start_killable`].
    pub fn kill(&mut self) {
        std::mem::forget(self.relay.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Plain HTTP on loopback, with `allow` as the target allow list.
    pub async fn start(allow: &[String]) -> Self {
        Self::start_with(allow, |_| {}).await
    }

    /// As [`TestRelay::start`], with a chance to adjust the config.
    pub async fn start_with(allow: &[String], adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            insecure_http: true,
            proxy_listen: Some("127.0.0.1:0".parse().unwrap()),
            socks_listen: Some("127.0.0.1:0".parse().unwrap()),
            allow_targets: allow.to_vec(),
            shutdown_grace_secs: 5,
            // Tests send many jobs to one target; the cap has its own test.
            node_site_per_minute: 0,
            // Every test node is on 127.0.0.1; the rule has its own test.
            earning_nodes_per_ip: 0,
            database_url: test_database().await,
            ..Config::default()
        };
        adjust(&mut config);
        let database = config.database();
        let relay = spareband_relay::start(config).await.expect("relay starts");
        let (_, key) = relay
            .state
            .db
            .create_customer("test")
            .await
            .expect("customer created");
        let base = relay.base_url();
        TestRelay {
            relay: Some(relay),
            dir,
            database,
            key: key.reveal().to_string(),
            base,
            runtime: None,
        }
    }

    /// The relay's proxy port, `http://127.0.0.1:PORT`.
    pub fn proxy_url(&self) -> String {
        let addr = self
            .relay
            .as_ref()
            .and_then(|r| r.proxy_addr)
            .expect("a relay with its proxy port");
        format!("http://{addr}")
    }

    /// The relay's SOCKS5 port, `127.0.0.1:PORT`.
    pub fn socks_addr(&self) -> String {
        self.relay
            .as_ref()
            .and_then(|r| r.socks_addr)
            .expect("a relay with its SOCKS5 port")
            .to_string()
    }

    pub fn state(&self) -> &std::sync::Arc<spareband_relay::AppState> {
        &self.relay.as_ref().expect("running").state
    }

    /// Waits until `n` nodes are connected.
    pub async fn wait_nodes(&self, n: usize) {
        let state = self.state().clone();
        wait_for(&format!("{n} nodes connected"), || {
            state.registry.len() == n
        })
        .await;
    }

    pub fn customer(&self) -> customer::Customer {
        customer::Customer::new(&self.base, &self.key)
    }

    pub async fn shutdown(&mut self) {
        if let Some(r) = self.relay.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another one's task.
        if let Some(rt) = self.runtime.take() {
            std::mem::forget(self.relay.take());
            rt.shutdown_background();
        }
    }
}

/// A local target, a relay allowed to reach it, and one native node on that
/// relay, connected.
pub async fn one_node() -> (target::Target, TestRelay, TestNode) {
    let target = target::Target::start().await;
    let allow = vec![target.host_port()];
    let relay = TestRelay::start(&allow).await;
    let node = TestNode::start(&relay.base, &allow);
    relay.wait_nodes(1).await;
    (target, relay, node)
}

/// Polls `cond` every 20 ms for up to 10 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A native node on its own runtime thread, so that killing it drops its
/// sockets and tasks at once, as a killed process would.
pub struct TestNode {
    pub id: NodeId,
    /// What the node has verified from the relay's receipts.
    pub receipts: std::sync::Arc<spareband_node::receipts::ReceiptStats>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub fn start(relay_url: &str, allow: &[String]) -> Self {
        Self::start_with(relay_url, allow, |_| {})
    }

    pub fn start_with(
        relay_url: &str,
        allow: &[String],
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> Self {
        Self::start_on(relay_url, allow, 1, adjust)
    }

    /// As [`TestNode::start_with`], on a runtime of `threads` workers (the
    /// node binary runs one per core; jobs and the connection then really
    /// run side by side).
    pub fn start_on(
        relay_url: &str,
        allow: &[String],
        threads: usize,
        adjust: impl FnOnce(&mut NodeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = NodeConfig {
            relays: vec![relay_url.to_string()],
            key_file: dir.path().join("node.key"),
            insecure_tls: false,
            allow_targets: allow.to_vec(),
            max_concurrency: 32,
            payout: None,
            blocked_domains: Vec::new(),
            bind: None,
            extra_target_roots: Vec::new(),
            controls: Default::default(),
            clock: None,
        };
        adjust(&mut config);
        let node = Node::new(config).expect("node config");
        let id = node.id();
        let receipts = node.receipts();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("node runtime");
        let stop = CancellationToken::new();
        let token = stop.clone();
        runtime.spawn(async move {
            let _ = node.run(token).await;
        });
        TestNode {
            id,
            receipts,
            runtime: Some(runtime),
            stop,
            _dir: dir,
        }
    }

    /// Kills the node: every task and socket is dropped at once.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Asks the node to stop gracefully.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a body can be checked
/// against its hash without storing it.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A reverse proxy in front of the relay that adds `X-Forwarded-For` to each
/// connection's first request (the node's WebSocket upgrade), as a TLS
/// terminator or load balancer would. It is bound before the relay starts,
/// so the relay's `public_url` can name it (nodes sign the origin they dial,
/// and the relay accepts only its own origins).
pub struct ForwardingProxy {
    listener: tokio::net::TcpListener,
    /// Where nodes dial.
    pub addr: std::net::SocketAddr,
}

impl ForwardingProxy {
    pub async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        ForwardingProxy { listener, addr }
    }

    /// `http://addr`, for the relay's `public_url` and the nodes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forwards to `relay`, telling it the n-th connection comes from
    /// `client_ips[n]` (the last one for any later connection).
    pub fn forward(self, relay: std::net::SocketAddr, client_ips: &[&str]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let headers: Vec<String> = client_ips
            .iter()
            .map(|ip| format!("X-Forwarded-For: {ip}\r\n"))
            .collect();
        let listener = self.listener;
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                let header = headers[n.min(headers.len() - 1)].clone();
                n += 1;
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if inbound.read_exact(&mut byte).await.is_err() || head.len() > 16 * 1024 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    head.truncate(head.len() - 2);
                    head.extend_from_slice(header.as_bytes());
                    head.extend_from_slice(b"\r\n");
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(relay).await else {
                        return;
                    };
                    if outbound.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
    }
}
