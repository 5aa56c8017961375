//! The proxy gateway: the relay as the HTTP proxy customers' tools already
//! speak, on its own port (`proxy_listen`).
//!
//! - [`username`]: the targeting a proxy username carries;
//! - [`ca`]: the proxy CA `mode-fetch` mints host certificates from;
//! - [`http`]: the HTTP/1.1 proxy itself;
//! - [`tunnel`]: a tunnel job through a native node;
//! - [`connect`]: `CONNECT`, as a tunnel or a `mode-fetch` tunnel;
//! - [`socks`]: the SOCKS5 port (`socks_listen`), tunnels only.

pub mod ca;
pub mod connect;
pub mod http;
pub mod socks;
pub mod tunnel;
pub mod username;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use std::sync::Arc;

/// Every request on the proxy port goes to one handler: a request in
/// absolute form has the target's path, which no route may claim.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().fallback(handle)
}

/// Any request on the proxy port: the credentials, then a `CONNECT`
/// ([`connect`]) or a request in absolute form ([`http`]).
async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match run(&state, req).await {
        Ok(r) => r,
        Err(e) => http::proxy_error(e),
    }
}

async fn run(state: &Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let (customer, targeting) = http::credentials(state, &parts.headers).await?;
    if parts.method == Method::CONNECT {
        return connect::open(state, &mut parts, customer, targeting).await;
    }
    if parts.uri.scheme().is_none() || parts.uri.authority().is_none() {
        return Err(ApiError::invalid_request(
            "this is a proxy port: send requests in absolute form (GET http://site/path), \
             as a client configured with this proxy does",
        ));
    }
    let url = parts.uri.to_string();
    http::forward(state, customer, &targeting, &url, &parts, body).await
}
