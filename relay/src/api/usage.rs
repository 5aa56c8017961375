//! `GET /v1/usage?days=N`: the calling key's requests and bytes per UTC day,
//! from the ledger. Only delivered jobs count as usage; failed attempts are
//! shown apart and cost nothing.

use super::authenticate;
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// Days shown when the caller names none.
pub const DEFAULT_DAYS: u32 = 30;
/// Most days one call may ask for.
pub const MAX_DAYS: u32 = 366;

/// `GET /v1/usage`.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match run(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(state: Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let customer = authenticate(&state, req.headers()).await?;
    let mut days = DEFAULT_DAYS;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "days" => {
                days = v
                    .parse()
                    .ok()
                    .filter(|d| (1..=MAX_DAYS).contains(d))
                    .ok_or_else(|| {
                        ApiError::invalid_request(format!(
                            "days must be a number from 1 to {MAX_DAYS}"
                        ))
                    })?
            }
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown query parameter '{other}'"
                )))
            }
        }
    }
    let (since, rows) = spareband_ledger::reports::usage_by_day(&state.db, customer, days)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "usage query failed");
            ApiError::new(ErrorCode::Internal, "usage could not be read; try again")
        })?;
    let (mut requests, mut up, mut down) = (0i64, 0i64, 0i64);
    for r in &rows {
        requests += r.requests;
        up += r.bytes_up;
        down += r.bytes_down;
    }
    let out = rows;
    Ok(axum::Json(json!({
        "since": since,
        "days": out,
        "total": {"requests": requests, "bytes_up": up, "bytes_down": down},
    }))
    .into_response())
}
