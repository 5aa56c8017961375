//! The JSON API the dashboard's pages draw from: the overview, the nodes
//! table and one node, and the epochs. The figures come from the ledger
//! ([`spareband_ledger::dashboard`]); what only the running relay knows
//! (nodes online, the request rate, the writer's queue) is added here.

use super::query::node_query;
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use spareband_ledger::dashboard::{self, CurrentEpoch, Live};
use spareband_ledger::{reports, LedgerError};
use std::sync::Arc;

/// The epoch in progress, with this relay's rate.
pub(super) fn current_epoch(state: &AppState) -> CurrentEpoch {
    CurrentEpoch::now(state.config.epoch(), state.config.reward_per_gib.0)
}

pub(super) fn internal(e: LedgerError) -> Response {
    tracing::error!(error = %e, "dashboard query failed");
    ApiError::new(
        ErrorCode::Internal,
        "the dashboard could not read the ledger; try again",
    )
    .into_response()
}

pub(super) async fn overview(State(state): State<Arc<AppState>>) -> Response {
    let total = state.metrics.jobs_total();
    // In a cluster, the nodes every relay holds (as each last announced;
    // this relay's own count is current).
    let nodes_online = match state.cluster.get() {
        Some(c) => c
            .members()
            .iter()
            .map(|m| {
                if m.id == c.id() {
                    state.registry.len()
                } else {
                    m.nodes as usize
                }
            })
            .sum(),
        None => state.registry.len(),
    };
    let live = Live {
        nodes_online,
        requests_per_second: state
            .admin
            .as_ref()
            .map_or(0.0, |a| a.rate.requests_per_second(total)),
        ledger_queue: state.ledger.queue_depth(),
    };
    let o = match dashboard::overview(&state.db, live, current_epoch(&state)).await {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let mut v = serde_json::to_value(o).unwrap_or_default();
    // This relay's cluster, as /healthz reports it (a relay that lost NATS
    // serves on and says so here too).
    if let Some(c) = state.cluster.get() {
        v["cluster"] = serde_json::json!({
            "connected": c.connected(),
            "relays": c.members().len(),
        });
    }
    axum::Json(v).into_response()
}

pub(super) async fn nodes(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let q = match node_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match dashboard::nodes(&state.db, &q, current_epoch(&state)).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => internal(e),
    }
}

fn node_id_param(id: &str) -> Result<(), ApiError> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            "a node id is 32 lowercase hex digits",
        ))
    }
}

pub(super) async fn node(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if let Err(e) = node_id_param(&id) {
        return e.into_response();
    }
    match dashboard::node(&state.db, &id, current_epoch(&state)).await {
        Ok(Some(n)) => axum::Json(n).into_response(),
        Ok(None) => {
            ApiError::new(ErrorCode::NotFound, "no node with that id has connected").into_response()
        }
        Err(e) => internal(e),
    }
}

pub(super) async fn epochs(State(state): State<Arc<AppState>>) -> Response {
    match reports::closed_epochs(&state.db).await {
        Ok(list) => axum::Json(serde_json::json!({
            "current": current_epoch(&state),
            "epochs": list,
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}
