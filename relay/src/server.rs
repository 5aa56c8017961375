//! The accept loop: TCP → (TLS) → hyper's auto HTTP/1 + HTTP/2 builder with
//! upgrades (for the node WebSocket), each connection watched by a graceful
//! shutdown so SIGTERM lets in-flight requests finish. Every connection is
//! admitted against the caps and read under the deadlines of
//! [`crate::conns`] first.

use crate::config::{
    H2_KEEP_ALIVE_INTERVAL, H2_KEEP_ALIVE_TIMEOUT, HEADER_READ_TIMEOUT, TLS_HANDSHAKE_TIMEOUT,
};
use crate::conns::{ConnLimits, Deadlined};
use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// What handlers know about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: SocketAddr,
}

/// What bounds the accepted connections.
pub struct Bounds {
    /// Caps and deadlines.
    pub limits: Arc<ConnLimits>,
    /// Where refusals and timeouts are counted.
    pub metrics: Arc<Metrics>,
}

/// Serves until `shutdown` is cancelled, then waits up to `grace` for open
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    bounds: Bounds,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match bounds.limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closed before TLS: a flood costs a socket for an instant.
                bounds.metrics.connection_refused(why);
                debug!(%peer, ?why, "connection refused at accept");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tcp = Deadlined::new(tcp, &bounds.limits);
        let app = app.clone();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnInfo { peer });
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let result = match acceptor {
                Some(acceptor) => {
                    let mut tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => return debug!(%peer, "TLS handshake timed out"),
                        };
                    // The handshake's bytes do not count: the first byte of
                    // HTTP must come within the first-byte deadline too.
                    tls.get_mut().0.expect_first_byte();
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections closed"),
        _ = tokio::time::sleep(grace) => warn!("shutdown grace period over; closing remaining connections"),
    }
}
