//! The relay's whole HTTP surface, put together in one place: the customer
//! API ([`crate::api`]), the node gateway ([`crate::nodes::gateway`]), the
//! cluster's job hop ([`crate::cluster::hop`]) and the admin dashboard ([`crate::admin`]), with the answers for unknown paths
//! and methods. No part routes into another.

use crate::{admin, api, nodes, AppState};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Every route of the relay.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(api::router())
        .route(
            spareband_protocol::NODE_GATEWAY_PATH,
            get(nodes::gateway::upgrade),
        )
        .route(
            crate::cluster::hop::HOP_PATH,
            axum::routing::post(crate::cluster::hop::handle),
        )
        .merge(admin::router(state.clone()))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}
