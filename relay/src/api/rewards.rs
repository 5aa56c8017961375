//! Public rewards data: closed epochs with totals and Merkle roots, and each
//! address's amount with its proof, everything a node owner needs to check a
//! payout and claim it from a distributor contract.

use super::error::{ApiError, ErrorCode};
use crate::rewards::address::Address;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sqlx::Row;
use std::sync::Arc;

fn internal(e: sqlx::Error) -> ApiError {
    tracing::error!(error = %e, "rewards query failed");
    ApiError::new(ErrorCode::Internal, "rewards could not be read; try again")
}

/// `GET /v1/rewards/epochs`: closed epochs, newest first, and the epoch in
/// progress (its aligned index is what receipts carry, and its rate is what
/// a node's bytes in it will earn).
pub async fn epochs(State(state): State<Arc<AppState>>) -> Response {
    match list(&state.db).await {
        Ok(list) => axum::Json(json!({
            "current": crate::admin::data::current_epoch(&state),
            "epochs": list,
        }))
        .into_response(),
        Err(e) => internal(e).into_response(),
    }
}

/// Closed epochs with totals and roots, newest first.
pub async fn list(db: &crate::db::Db) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.epoch, e.start_ms, e.end_ms, e.reward_per_gib, e.total_bytes, e.unassigned_bytes,
                e.total_amount, e.merkle_root, e.closed_at,
                (SELECT COUNT(*) FROM epoch_payouts p WHERE p.epoch = e.epoch)
         FROM epochs e ORDER BY e.epoch DESC",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "epoch": r.get::<i64, _>(0),
                "start_ms": r.get::<i64, _>(1),
                "end_ms": r.get::<i64, _>(2),
                "reward_per_gib": r.get::<String, _>(3),
                "total_bytes": r.get::<i64, _>(4),
                "unassigned_bytes": r.get::<i64, _>(5),
                "total_amount": r.get::<String, _>(6),
                "merkle_root": r.get::<Option<String>, _>(7),
                "closed_at": r.get::<i64, _>(8),
                "payouts": r.get::<i64, _>(9),
            })
        })
        .collect())
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
    let row = sqlx::query(
        "SELECT p.bytes, p.amount, p.proof, e.merkle_root FROM epoch_payouts p
         JOIN epochs e ON e.epoch = p.epoch WHERE p.epoch = $1 AND p.address = $2",
    )
    .bind(epoch)
    .bind(address.to_checksum())
    .fetch_optional(state.db.pool())
    .await;
    match row {
        Err(e) => internal(e).into_response(),
        Ok(None) => ApiError::new(
            ErrorCode::NotFound,
            format!("no payout for {address} in epoch {epoch} (is the epoch closed, and did nodes of this address deliver work in it?)"),
        )
        .into_response(),
        Ok(Some(r)) => {
            let proof: Value = serde_json::from_str(&r.get::<String, _>(2)).unwrap_or(Value::Null);
            axum::Json(json!({
                "epoch": epoch,
                "address": address.to_checksum(),
                "bytes": r.get::<i64, _>(0),
                "amount": r.get::<String, _>(1),
                "proof": proof,
                "merkle_root": r.get::<Option<String>, _>(3),
            }))
            .into_response()
        }
    }
}
