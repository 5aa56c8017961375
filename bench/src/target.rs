//! The local target every scenario fetches from: `GET /bytes?n=N` answers N
//! bytes with a content length, over plain HTTP or (scenario 9's
//! `mode-fetch`) TLS with a self-signed certificate. Small bodies are one buffer; large ones are
//! streamed from one shared chunk, so the target itself costs next to nothing
//! per byte and the figures measure the path, not the source.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Size of the chunk large bodies are cut from.
const CHUNK: usize = 256 * 1024;

/// A body of `remaining` bytes, sent as clones of one chunk.
struct Repeat {
    chunk: Bytes,
    remaining: u64,
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn answer(req: Request<Incoming>, chunk: &Bytes) -> Response<Repeat> {
    let n = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse::<u64>().ok());
    match (req.uri().path(), n) {
        ("/bytes", Some(n)) => Response::new(Repeat {
            chunk: chunk.clone(),
            remaining: n,
        }),
        _ => {
            let mut r = Response::new(Repeat {
                chunk: chunk.clone(),
                remaining: 0,
            });
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// Starts the target on its own thread and runtime (two workers, like a
/// two-process web server on this machine), and returns its address.
pub fn start() -> anyhow::Result<SocketAddr> {
    start_with(None)
}

/// As [`start`], serving TLS with a certificate for 127.0.0.1 made here;
/// returns the address and the certificate in PEM (to trust it).
pub fn start_tls() -> anyhow::Result<(SocketAddr, String)> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.key_pair.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)?;
    let addr = start_with(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        config,
    ))))?;
    Ok((addr, cert.cert.pem()))
}

fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("target")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("target".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("target listener");
                let chunk = Bytes::from(vec![b'x'; CHUNK]);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (chunk, tls) = (chunk.clone(), tls.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let r = answer(req, &chunk);
                            async move { Ok::<_, Infallible>(r) }
                        });
                        let http =
                            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let _ = match tls {
                            None => {
                                http.http1_only()
                                    .serve_connection(TokioIo::new(tcp), svc)
                                    .await
                            }
                            Some(tls) => match tls.accept(tcp).await {
                                Ok(s) => {
                                    http.http1_only()
                                        .serve_connection(TokioIo::new(s), svc)
                                        .await
                                }
                                Err(_) => return,
                            },
                        };
                    });
                }
            })
        })?;
    Ok(addr)
}
