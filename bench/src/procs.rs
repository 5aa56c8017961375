//! The real binaries, started as a user would start them, and what Linux
//! tells about them: resident memory and CPU time from `/proc`.

use crate::load::{self, Endpoint};
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a started relay or node may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory the bench binary sits in: the relay and node binaries of
/// the same build are beside it.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("bench binary has no directory")?
        .into())
}

/// A free loopback port (bound and released; fine for a benchmark).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// User plus system CPU time a process has used.
pub fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // USER_HZ is 100 on every Linux this runs on.
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU time of this process (the load generator and target).
pub fn own_cpu() -> anyhow::Result<Duration> {
    cpu(std::process::id())
}

/// A relay process with its data dir and one customer key.
pub struct Relay {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The customer key.
    pub key: String,
    /// A client config trusting its certificate (None: plain HTTP).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Its data dir (removed on drop).
    pub dir: tempfile::TempDir,
}

impl Relay {
    /// Starts a relay with TLS (its generated certificate), limits that get
    /// out of the way of a benchmark, and `allow` as allow-listed targets.
    pub async fn start(allow: &[SocketAddr]) -> anyhow::Result<Relay> {
        Relay::start_with(allow, true).await
    }

    /// As [`Relay::start`]; `tls: false` serves plain HTTP (loopback only),
    /// to compare with a raw TCP tunnel, which has no TLS either.
    pub async fn start_with(allow: &[SocketAddr], tls: bool) -> anyhow::Result<Relay> {
        Relay::start_configured(allow, tls, "", &[]).await
    }

    /// As [`Relay::start_with`], with `extra` lines of config and `env`
    /// variables (a cluster member's database, NATS and secret).
    pub async fn start_configured(
        allow: &[SocketAddr],
        tls: bool,
        extra: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Relay> {
        let dir = tempfile::tempdir()?;
        let bin = bin_dir()?.join("spareband-relay");
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
        let config = dir.path().join("relay.toml");
        // One customer sends all the load, so the per-key limits are raised
        // far above it; the site cap, the one-earner-per-IP rule and the
        // per-address connection cap are off because every node here shares
        // one address (the fan-in opens 10,000 from it) and one target.
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\ndata_dir = \"{}\"\nallow_targets = [{}]\n\
                 key_rate_per_sec = 10000000\nkey_burst = 10000000\nkey_max_concurrent = 100000\n\
                 node_site_per_minute = 0\nearning_nodes_per_ip = 0\nmax_connections_per_ip = 0\n\
                 insecure_http = {}\n{extra}",
                dir.path().join("data").display(),
                allow.join(", "),
                !tls
            ),
        )?;
        let out = Command::new(&bin)
            .args(["keys", "create", "--name", "bench", "--config"])
            .arg(&config)
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!("keys create failed");
        }
        let key = String::from_utf8(out.stdout)?.trim().to_string();
        let child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let proc = Proc(child);
        let cert = dir.path().join("data").join("relay-cert.pem");
        let deadline = Instant::now() + READY_TIMEOUT;
        while (tls && !cert.exists()) || tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("the relay did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tls = if tls { Some(load::trust(&cert)?) } else { None };
        Ok(Relay {
            proc,
            addr,
            key,
            tls,
            dir,
        })
    }

    /// The customer endpoint.
    pub fn endpoint(&self) -> Endpoint {
        match &self.tls {
            Some(c) => Endpoint::Tls(self.addr, c.clone()),
            None => Endpoint::Plain(self.addr),
        }
    }

    /// `https://127.0.0.1:port` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A raw-mode request for `target/bytes?n=len`.
    pub fn raw(&self, target: SocketAddr, len: u64) -> load::Spec {
        load::Spec {
            path: format!(
                "/v1/raw?url=http%3A%2F%2F{target}%2Fbytes%3Fn%3D{len}&timeout_ms=120000"
            ),
            auth: Some(format!("Bearer {}", self.key)),
            expect_len: len as usize,
            proxy_auth: None,
        }
    }

    /// GETs a path on the relay and returns the body as text.
    pub async fn get(&self, path: &str) -> anyhow::Result<String> {
        use http_body_util::BodyExt;
        let mut send = self.endpoint().connect().await?;
        let req = http::Request::get(path)
            .header("host", self.addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let resp = send.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Connected nodes, from `/healthz`.
    pub async fn nodes(&self) -> anyhow::Result<u64> {
        let v: serde_json::Value = serde_json::from_str(&self.get("/healthz").await?)?;
        v["nodes"].as_u64().context("healthz without nodes")
    }

    /// Waits until at least `n` nodes are connected.
    pub async fn wait_nodes(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.nodes().await.unwrap_or(0);
            if have >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{have} of {n} nodes connected after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One value from `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.get("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("no metric {name}"))
    }

    /// Starts `n` native node processes that may reach `target`.
    pub fn start_nodes(&self, n: usize, target: SocketAddr) -> anyhow::Result<Vec<Proc>> {
        self.start_nodes_at(n, target, Some(256))
    }

    /// As [`Relay::start_nodes`], each node at `max_concurrency` (`None`:
    /// the node's own default).
    pub fn start_nodes_at(
        &self,
        n: usize,
        target: SocketAddr,
        max_concurrency: Option<u16>,
    ) -> anyhow::Result<Vec<Proc>> {
        let concurrency: Vec<String> = max_concurrency
            .map(|c| vec!["--max-concurrency".to_string(), c.to_string()])
            .unwrap_or_default();
        self.start_nodes_with(n, &[target], &concurrency)
    }

    /// Starts `n` native node processes that may reach every one of
    /// `targets`, with `extra` arguments.
    pub fn start_nodes_with(
        &self,
        n: usize,
        targets: &[SocketAddr],
        extra: &[String],
    ) -> anyhow::Result<Vec<Proc>> {
        let bin = bin_dir()?.join("spareband-node");
        let allow: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        (0..n)
            .map(|i| {
                let child = Command::new(&bin)
                    .arg("--relay")
                    .arg(self.url())
                    .arg("--insecure-tls")
                    .arg("--allow-target")
                    .arg(allow.join(","))
                    .arg("--key-file")
                    .arg(self.dir.path().join(format!("node{i}.key")))
                    .args(extra)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()?;
                Ok(Proc(child))
            })
            .collect()
    }
}

/// Samples a process's resident memory every few milliseconds until
/// stopped, and returns the highest value seen.
pub struct RssPeak {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssPeak {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        RssPeak { stop, thread }
    }

    /// Stops and returns the peak.
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
