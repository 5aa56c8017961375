//! The proxy gateway: the relay as the HTTP proxy customers' tools already
//! speak, on its own port (`proxy_listen`).
//!
//! - [`username`]: the targeting a proxy username carries;
//! - [`http`]: the HTTP/1.1 proxy itself.

pub mod http;
pub mod username;

use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::Router;
use std::sync::Arc;
use username::Targeting;

/// Every request on the proxy port goes to one handler: a request in
/// absolute form has the target's path, which no route may claim.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().fallback(http::handle)
}

/// Refuses targeting this relay cannot do yet, in words, rather than
/// running the job without it: city, region and AS number need GeoIP
/// databases the relay does not read yet.
pub fn unsupported_filters(t: &Targeting) -> Result<(), ApiError> {
    let unsupported = [
        t.city.as_ref().map(|c| format!("city '{c}'")),
        t.region.as_ref().map(|r| format!("region '{r}'")),
        t.asn.map(|a| format!("AS {a}")),
    ];
    match unsupported.into_iter().flatten().next() {
        Some(filter) => Err(ApiError::new(
            ErrorCode::NoNodeAvailable,
            format!("no node matches {filter}: this relay does not target by city, region or AS number yet"),
        )),
        None => Ok(()),
    }
}
