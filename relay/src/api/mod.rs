//! The HTTP surface of the relay: the customer API, the node gateway, health,
//! metrics and the OpenAPI document.

pub mod error;
pub mod fetch;
pub mod raw;
pub mod request;

use crate::db::CustomerId;
use crate::secret::ApiKey;
use crate::server::ConnInfo;
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use error::{ApiError, ErrorCode};
use http::HeaderMap;
use std::sync::Arc;

/// The OpenAPI 3.1 document, kept true by the relay's tests.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Most API keys cached in memory (cleared when full).
const AUTH_CACHE_MAX: usize = 100_000;

/// Every route the relay serves, as `(method, path)`; the OpenAPI test checks
/// the document against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/node"),
    ("post", "/v1/fetch"),
    ("get", "/v1/raw"),
    ("post", "/v1/raw"),
    ("put", "/v1/raw"),
    ("patch", "/v1/raw"),
    ("delete", "/v1/raw"),
    ("head", "/v1/raw"),
    ("options", "/v1/raw"),
];

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/node", get(crate::nodes::gateway::upgrade))
        .route("/v1/fetch", post(fetch::handle))
        .route("/v1/raw", any(raw::handle))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Resolves `Authorization: Bearer <key>` to a customer.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<CustomerId, ApiError> {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(ApiError::unauthorized)?;
    let key = ApiKey::from_presented(presented);
    let hash = key.hash();
    if let Some(id) = state.auth_cache_get(&hash) {
        return Ok(id);
    }
    match state.db.customer_by_key(&key).await {
        Ok(Some(id)) => {
            state.auth_cache_put(hash, id, AUTH_CACHE_MAX);
            Ok(id)
        }
        Ok(None) => Err(ApiError::unauthorized()),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            Err(ApiError::new(ErrorCode::Internal, "the relay could not check the key; try again"))
        }
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "nodes": state.registry.len(),
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": spareband_protocol::PROTOCOL_VERSION,
    }))
    .into_response()
}

async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Prometheus metrics, for scrapers on the relay's own machine only.
async fn metrics(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let local = req
        .extensions()
        .get::<ConnInfo>()
        .is_some_and(|c| c.peer.ip().is_loopback());
    if !local {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "metrics are only served to clients on the relay's own machine",
        )
        .into_response();
    }
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; see /v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method; see /v1/openapi.json",
    )
}
