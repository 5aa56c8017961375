//! Public rewards data: closed epochs with totals and Merkle roots, and each
//! address's amount with its proof, everything a node owner needs to check a
//! payout and claim it from a distributor contract.

use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use spareband_ledger::dashboard::CurrentEpoch;
use spareband_ledger::reports;
use spareband_ledger::rewards::address::Address;
use spareband_ledger::LedgerError;
use std::sync::Arc;

fn internal(e: LedgerError) -> ApiError {
    tracing::error!(error = %e, "rewards query failed");
    ApiError::new(ErrorCode::Internal, "rewards could not be read; try again")
}

/// `GET /v1/rewards/epochs`: closed epochs, newest first, and the epoch in
/// progress (its number is what receipts carry, and its rate is what a
/// node's bytes in it will earn).
pub async fn epochs(State(state): State<Arc<AppState>>) -> Response {
    match reports::closed_epochs(&state.db).await {
        Ok(list) => axum::Json(json!({
            "current": CurrentEpoch::now(state.config.epoch(), state.config.reward_per_gib.0),
            "epochs": list,
        }))
        .into_response(),
        Err(e) => internal(e).into_response(),
    }
}

/// `GET /v1/rewards/epochs/{n}/{address}`.
pub async fn payout(
    State(state): State<Arc<AppState>>,
    Path((epoch, address)): Path<(String, String)>,
) -> Response {
    let Ok(epoch) = epoch.parse::<i64>() else {
        return ApiError::invalid_request("the epoch must be a number").into_response();
    };
    let address = match Address::parse(&address) {
        Ok(a) => a,
        Err(e) => return ApiError::invalid_request(e.to_string()).into_response(),
    };
    match reports::payout(&state.db, epoch, &address).await {
        Err(e) => internal(e).into_response(),
        Ok(None) => ApiError::new(
            ErrorCode::NotFound,
            format!("no payout for {address} in epoch {epoch} (is the epoch closed, and did nodes of this address deliver work in it?)"),
        )
        .into_response(),
        Ok(Some(p)) => axum::Json(json!({
            "epoch": epoch,
            "address": address.to_checksum(),
            "bytes": p.bytes,
            "amount": p.amount,
            "proof": p.proof,
            "merkle_root": p.merkle_root,
        }))
        .into_response(),
    }
}
