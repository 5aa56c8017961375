//! `CONNECT` on the proxy port, two ways:
//!
//! - `mode-tunnel` (the default): a tunnel job on a native node of this
//!   relay: the node opens the TCP connection (its policy on the host and
//!   every address), and bytes go both ways under credit, metered each way,
//!   ([`super::tunnel`]); the relay sees only ciphertext.
//! - `mode-fetch`: the relay answers `200`, ends the customer's TLS with a
//!   certificate for the host from its proxy CA ([`super::ca`]), reads each
//!   HTTP/1.1 request inside and runs it as an ordinary `https` job (any
//!   node kind), with the credentials and targeting of the `CONNECT`.
//!
//! The tunnel lives on the customer's connection to the proxy port, so its
//! bounds are that connection's: the idle timeout, the per-address cap, and
//! the relay's graceful shutdown.

use super::http::{forward, proxy_error};
use super::username::{Mode, Targeting};
use crate::api::request;
use crate::config::{HEADER_READ_TIMEOUT, TLS_HANDSHAKE_TIMEOUT};
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::body::Body;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use spareband_ledger::CustomerId;
use std::sync::Arc;
use tracing::debug;

/// Largest request head read inside a tunnel, as on the relay's own port.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Answers a `CONNECT` and serves the tunnel behind it.
pub async fn open(
    state: &Arc<AppState>,
    parts: &mut http::request::Parts,
    customer: CustomerId,
    targeting: Targeting,
) -> Result<Response, ApiError> {
    let authority = parts
        .uri
        .authority()
        .filter(|a| a.port_u16().is_some())
        .cloned()
        .ok_or_else(|| ApiError::invalid_request("CONNECT needs host:port"))?;
    let origin = match authority.port_u16() {
        Some(443) => format!("https://{}", authority.host()),
        _ => format!("https://{authority}"),
    };
    // The host is checked before anything is opened or minted for it.
    let target = request::target(&state.policy, &format!("{origin}/"))?;
    if targeting.mode == Mode::Tunnel {
        return tunnel(state, parts, customer, &targeting, target).await;
    }
    let Some(ca) = state.proxy_ca.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "this relay has no proxy CA",
        ));
    };
    let tls = ca.server_config(authority.host()).map_err(|e| {
        ApiError::invalid_request(format!(
            "no certificate can be made for {}: {e}",
            authority.host()
        ))
    })?;
    let upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "this connection cannot be upgraded"))?;
    let state = state.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => return debug!(error = %e, "CONNECT: the upgrade failed"),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let stream = match tokio::time::timeout(
            TLS_HANDSHAKE_TIMEOUT,
            acceptor.accept(TokioIo::new(upgraded)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return debug!(error = %e, "CONNECT: the customer's TLS handshake failed"),
            Err(_) => return debug!("CONNECT: the customer's TLS handshake timed out"),
        };
        let targeting = Arc::new(targeting);
        let origin = Arc::new(origin);
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (state, targeting, origin) = (state.clone(), targeting.clone(), origin.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let url = format!(
                        "{origin}{}",
                        parts.uri.path_and_query().map_or("/", |p| p.as_str())
                    );
                    let answer =
                        forward(&state, customer, &targeting, &url, &parts, Body::new(body))
                            .await
                            .unwrap_or_else(proxy_error);
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(e) = served {
            debug!(error = %e, "CONNECT: the tunnel ended with an error");
        }
    });
    Ok(Response::new(Body::empty()))
}

/// Runs a tunnel job for a `CONNECT` (`mode-tunnel`): once the node has the
/// connection open, the customer gets `200` and the bytes flow.
async fn tunnel(
    state: &Arc<AppState>,
    parts: &mut http::request::Parts,
    customer: CustomerId,
    targeting: &Targeting,
    target: spareband_protocol::Target,
) -> Result<Response, ApiError> {
    let upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "this connection cannot be upgraded"))?;
    let open = super::tunnel::open(state, customer, targeting, target).await?;
    let node = open.node.to_string();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(u) => open.pipe(TokioIo::new(u)).await,
            Err(e) => debug!(error = %e, "CONNECT: the upgrade failed"),
        }
    });
    let mut answer = Response::new(Body::empty());
    if let Ok(v) = http::HeaderValue::from_str(&node) {
        answer.headers_mut().insert("x-spareband-node", v);
    }
    Ok(answer)
}
