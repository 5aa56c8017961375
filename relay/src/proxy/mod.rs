//! The proxy gateway: the relay as the HTTP proxy customers' tools already
//! speak, on its own port (`proxy_listen`).
//!
//! - [`username`]: the targeting a proxy username carries;
//! - [`ca`]: the proxy CA `mode-fetch` mints host certificates from;
//! - [`http`]: the HTTP/1.1 proxy itself;
//! - [`connect`]: `CONNECT`, and the `mode-fetch` tunnel behind it.

pub mod ca;
pub mod connect;
pub mod http;
pub mod username;

use crate::AppState;
use axum::Router;
use std::sync::Arc;

/// Every request on the proxy port goes to one handler: a request in
/// absolute form has the target's path, which no route may claim.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().fallback(http::handle)
}
