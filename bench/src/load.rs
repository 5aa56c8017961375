//! The load generator: N keep-alive HTTP/1.1 connections, each sending the
//! next request as soon as the last answer is read in full (closed loop, like
//! wrk), over plain TCP or TLS. Latencies are kept whole and sorted at the
//! end, so percentiles are exact rather than bucketed.

use anyhow::Context;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

/// Where requests go: plain to the target, or TLS to the relay, or through
/// a proxy's `CONNECT` tunnel.
#[derive(Clone)]
pub enum Endpoint {
    /// Plain HTTP.
    Plain(SocketAddr),
    /// HTTPS, trusting the given client config.
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
    /// HTTP to `target` inside a `CONNECT` tunnel through `proxy`, one
    /// tunnel per connection (its requests kept alive inside).
    Connect {
        /// The proxy port.
        proxy: SocketAddr,
        /// The target the tunnel reaches.
        target: SocketAddr,
        /// `Proxy-Authorization` value.
        auth: String,
        /// TLS inside the tunnel, trusting this config (`mode-fetch`: the
        /// relay's proxy CA); `None`: plain HTTP inside.
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

impl Endpoint {
    fn addr(&self) -> SocketAddr {
        match self {
            Endpoint::Plain(a) | Endpoint::Tls(a, _) => *a,
            Endpoint::Connect { target, .. } => *target,
        }
    }

    /// Opens one HTTP/1.1 connection.
    pub async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        match self {
            Endpoint::Plain(addr) => http1(dial(*addr).await?).await,
            Endpoint::Tls(addr, config) => {
                http1(tls_to(*addr, config, dial(*addr).await?).await?).await
            }
            Endpoint::Connect {
                proxy,
                target,
                auth,
                tls,
            } => {
                let tunnel = open_tunnel(*proxy, *target, auth).await?;
                match tls {
                    Some(config) => http1(tls_to(*target, config, tunnel).await?).await,
                    None => http1(tunnel).await,
                }
            }
        }
    }
}

async fn dial(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// TLS to `addr` (by its IP address) over `io`, trusting `config`.
async fn tls_to<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    io: IO,
) -> anyhow::Result<tokio_rustls::client::TlsStream<IO>> {
    let name = ServerName::IpAddress(addr.ip().into());
    Ok(TlsConnector::from(config.clone()).connect(name, io).await?)
}

/// An HTTP/1.1 client connection over `io`, its driver spawned.
async fn http1<IO>(io: IO) -> anyhow::Result<SendRequest<Empty<Bytes>>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// A `CONNECT` tunnel to `target` through the proxy port at `proxy`.
async fn open_tunnel(
    proxy: SocketAddr,
    target: SocketAddr,
    auth: &str,
) -> anyhow::Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = dial(proxy).await?;
    tcp.write_all(
        format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    // The answer's head, a byte at a time: nothing after it may be read
    // here, it belongs to the tunnel.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 16 * 1024, "CONNECT: no end of head");
        head.push(tcp.read_u8().await?);
    }
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "CONNECT: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(tcp)
}

/// One request, as sent again and again.
#[derive(Clone)]
pub struct Spec {
    /// Path and query.
    pub path: String,
    /// `Authorization` value, if any.
    pub auth: Option<String>,
    /// `Proxy-Authorization` value, for a request to a proxy port.
    pub proxy_auth: Option<String>,
    /// The body length every answer must have.
    pub expect_len: usize,
}

impl Spec {
    fn request(&self, host: &str) -> Request<Empty<Bytes>> {
        let mut b = Request::get(&self.path).header("host", host);
        if let Some(a) = &self.auth {
            b = b.header("authorization", a);
        }
        if let Some(a) = &self.proxy_auth {
            b = b.header("proxy-authorization", a);
        }
        b.body(Empty::new()).expect("valid request")
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Answers that were 200 with the expected length, in the measured window.
    pub ok: u64,
    /// Anything else, in the measured window (including connection errors).
    pub errors: u64,
    /// The first failure seen (status and the start of its body, or the
    /// connection error), so a failed count comes with its reason.
    pub first_error: Option<String>,
    /// Requests per second (ok answers over the window).
    pub rps: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

impl LoadResult {
    /// Says on stderr why requests failed, when some did.
    pub fn explain(&self, what: &str) {
        if let (n @ 1.., Some(why)) = (self.errors, &self.first_error) {
            eprintln!("   {what}: {n} failed; the first: {why}");
        }
    }
}

/// Runs `conns` closed-loop connections for `warmup` (not counted) and then
/// `duration`.
pub async fn run(
    endpoint: &Endpoint,
    spec: &Spec,
    conns: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let host = endpoint.addr().to_string();
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let endpoint = endpoint.clone();
        let spec = spec.clone();
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(65_536);
            let mut errors = 0u64;
            let mut first: Option<String> = None;
            let mut send = endpoint.connect().await?;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let outcome = async {
                    send.ready().await?;
                    let resp = send.send_request(spec.request(&host)).await?;
                    let status = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    if status == 200 && body.len() == spec.expect_len {
                        return anyhow::Ok(None);
                    }
                    let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    anyhow::Ok(Some(format!("{status}, {} bytes: {head}", body.len())))
                }
                .await;
                let counted = t0 >= start;
                match outcome {
                    Ok(None) if counted => lat.push(t0.elapsed().as_micros() as u32),
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        errors += counted as u64;
                        first.get_or_insert(why);
                    }
                    Err(e) => {
                        errors += counted as u64;
                        first.get_or_insert(format!("connection: {e:#}"));
                        // The connection is gone; open another and go on.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        send = endpoint.connect().await?;
                    }
                }
            }
            anyhow::Ok((lat, errors, first))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, e, first) = t.await.context("load task")??;
        all.extend(lat);
        errors += e;
        first_error = first_error.or(first);
    }
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as u64
    };
    Ok(LoadResult {
        ok: all.len() as u64,
        errors,
        first_error,
        rps: all.len() as f64 / duration.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

/// Fetches one body and counts its bytes as they arrive, reading at most
/// `rate` bytes per second when given (a slow customer). Returns the byte
/// count and the time from sending the request to the last byte.
pub async fn fetch_counting(
    endpoint: &Endpoint,
    spec: &Spec,
    rate: Option<u64>,
) -> anyhow::Result<(u64, Duration)> {
    let mut send = endpoint.connect().await?;
    let host = endpoint.addr().to_string();
    let t0 = Instant::now();
    let resp = send.send_request(spec.request(&host)).await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
            if let Some(rate) = rate {
                // Sleep off what this frame bought at the given rate.
                let due = t0 + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
        }
    }
    Ok((n, t0.elapsed()))
}

/// A client config that trusts exactly the relay's generated certificate.
pub fn trust(cert_pem: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(cert_pem).with_context(|| cert_pem.display().to_string())?;
    trust_pem(&pem)
}

/// A client config trusting the certificates of a PEM text.
pub fn trust_pem(pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
