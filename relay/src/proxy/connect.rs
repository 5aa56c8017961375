//! `CONNECT` on the proxy port. With `mode-fetch` in the username the relay
//! answers `200`, ends the customer's TLS with a certificate for the host
//! from its proxy CA ([`super::ca`]), reads each HTTP/1.1 request inside
//! and runs it as an ordinary `https` job (any node kind), with the
//! credentials and targeting of the `CONNECT`. The end-to-end tunnel
//! (`mode-tunnel`, the default) needs a job kind nodes do not have yet, and
//! is refused in words.
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

/// Answers a `CONNECT` and, for `mode-fetch`, serves the tunnel behind it.
pub fn open(
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
    if targeting.mode == Mode::Tunnel {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "CONNECT tunnels (mode-tunnel, the default) are not served yet: add mode-fetch to the \
             proxy username to have the relay fetch the https requests inside (trust its CA from \
             GET /v1/proxy-ca.pem; the relay then reads them, as on the JSON API)",
        ));
    }
    let Some(ca) = state.proxy_ca.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "this relay has no proxy CA",
        ));
    };
    // The host is checked before a certificate is made for it.
    let origin = match authority.port_u16() {
        Some(443) => format!("https://{}", authority.host()),
        _ => format!("https://{authority}"),
    };
    request::target(&state.policy, &format!("{origin}/"))?;
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
