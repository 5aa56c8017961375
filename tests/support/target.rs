//! A local target server on 127.0.0.1:0 with routes the tests need. It counts
//! every request and remembers each request's headers, so a test can prove a
//! target received nothing (a canary) or exactly what was sent.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

#[derive(Default)]
pub struct Seen {
    pub hits: AtomicU64,
    pub requests: Mutex<Vec<(String, String, http::HeaderMap)>>,
}

/// A running target.
pub struct Target {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    /// With [`Target::start_tls`]: its self-signed certificate, for a node
    /// to trust (`NodeConfig::extra_target_roots`).
    pub tls_root: Option<rustls::pki_types::CertificateDer<'static>>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The same routes over TLS (a self-signed certificate for 127.0.0.1).
    pub async fn start_tls() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
        let mut t = Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
        t.tls_root = Some(der);
        t
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let (s, tls) = (s.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        Some(tls) => match tls.accept(tcp).await {
                            Ok(stream) => builder.serve_connection(TokioIo::new(stream), svc).await,
                            Err(_) => return,
                        },
                        None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                    };
                });
            }
        });
        Target {
            addr,
            seen,
            tls_root: None,
            task,
        }
    }

    /// `host:port` for allow lists.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls_root.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn hits(&self) -> u64 {
        self.seen.hits.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<(String, String, http::HeaderMap)> {
        self.seen.requests.lock().unwrap().clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Routes:
/// - `/hello`: "hello from the target"
/// - `/echo`: the request body back, with `x-method` and `x-body-sha256`
/// - `/bytes?n=N&seed=S&chunk=C`: N pattern bytes, streamed in C-byte pieces (16 KiB)
/// - `/drip?n=N`: N bytes, then the body never ends
/// - `/stall`: never answers
/// - `/stall-first`: the first request never answers, later ones say "second try"
/// - `/redirect?to=URL&status=302`: a redirect
/// - `/cookie`: sets a cookie and reports the `cookie` header it received
async fn handle(seen: Arc<Seen>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let hit = seen.hits.fetch_add(1, Ordering::SeqCst) + 1;
    seen.requests.lock().unwrap().push((
        req.method().to_string(),
        req.uri().to_string(),
        req.headers().clone(),
    ));
    let path = req.uri().path().to_string();
    let res = match path.as_str() {
        "/hello" => Response::new(full("hello from the target")),
        "/echo" => {
            let method = req.method().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let sha = crate::sha256_hex(&body);
            Response::builder()
                .header("x-method", method)
                .header("x-body-sha256", sha)
                .body(full(body))
                .unwrap()
        }
        "/bytes" => {
            let n: usize = query(&req, "n")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024);
            let seed: u64 = query(&req, "seed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let data = Bytes::from(crate::pattern(n, seed));
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..n)
                .step_by(16 * 1024)
                .map(|i| Ok(Frame::data(data.slice(i..(i + 16 * 1024).min(n)))))
                .collect();
            Response::builder()
                .header("content-length", n.to_string())
                .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync())
                .unwrap()
        }
        "/drip" => {
            let n: usize = query(&req, "n")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024);
            let first = Bytes::from(vec![b'd'; n]);
            let s = futures_util::stream::unfold(Some(first), |state| async move {
                match state {
                    Some(b) => Some((Ok(Frame::data(b)), None)),
                    None => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        None
                    }
                }
            });
            Response::new(StreamBody::new(s).boxed_unsync())
        }
        "/stall" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full(""))
        }
        "/stall-first" => {
            let first = seen
                .requests
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, u, _)| u.starts_with("/stall-first"))
                .count()
                == 1;
            if first {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Response::new(full("second try"))
        }
        "/redirect" => {
            let to = query(&req, "to").unwrap_or_else(|| "/hello".into());
            let status: u16 = query(&req, "status")
                .and_then(|v| v.parse().ok())
                .unwrap_or(302);
            Response::builder()
                .status(status)
                .header("location", to)
                .body(full(""))
                .unwrap()
        }
        "/cookie" => {
            let got = req
                .headers()
                .get("cookie")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            Response::builder()
                .header("set-cookie", format!("visit={hit}; Path=/"))
                .body(full(format!("cookie:{got}")))
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("not here"))
            .unwrap(),
    };
    Ok(res)
}
