//! The HTTP surface of the relay: the customer API, the node gateway, health,
//! metrics and the OpenAPI document.

pub mod fetch;
pub mod raw;
pub mod request;
pub mod rewards;
pub mod usage;

use crate::error::{ApiError, ErrorCode};
use crate::secret::ApiKey;
use crate::server::ConnInfo;
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use http::HeaderMap;
use spareband_ledger::CustomerId;
use std::sync::Arc;

/// The OpenAPI 3.1 document, kept true by the relay's tests.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Most API keys cached in memory (cleared when full).
const AUTH_CACHE_MAX: usize = 100_000;
/// How long a key's lookup is trusted before the database is asked again:
/// the longest a key disabled by another process (`spareband-relay keys
/// disable`) keeps working. The relay's own [`crate::AppState::disable_customer`]
/// takes effect at once. Five seconds, like the monthly quota's re-read, costs
/// one indexed lookup per key per five seconds.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Every route the relay serves, as `(method, path)`; the OpenAPI test checks
/// the document against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/node"),
    ("post", "/v1/fetch"),
    ("get", "/v1/usage"),
    ("get", "/v1/relay-key"),
    ("get", "/v1/proxy-ca.pem"),
    ("get", "/v1/rewards/epochs"),
    ("get", "/v1/rewards/epochs/{epoch}/{address}"),
    ("get", "/v1/raw"),
    ("post", "/v1/raw"),
    ("put", "/v1/raw"),
    ("patch", "/v1/raw"),
    ("delete", "/v1/raw"),
    ("head", "/v1/raw"),
    ("options", "/v1/raw"),
];

/// The customer API's routes and the relay's own endpoints (health,
/// metrics, the OpenAPI document, the receipt key). The whole surface is
/// put together in [`crate::routes`].
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/fetch", post(fetch::handle))
        .route("/v1/usage", get(usage::handle))
        .route("/v1/relay-key", get(relay_key))
        .route("/v1/proxy-ca.pem", get(proxy_ca))
        .route("/v1/rewards/epochs", get(rewards::epochs))
        .route("/v1/rewards/epochs/{epoch}/{address}", get(rewards::payout))
        .route("/v1/raw", any(raw::handle))
}

/// The credential in `Authorization: Bearer <credential>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
}

/// Resolves `Authorization: Bearer <key>` to a customer.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<CustomerId, ApiError> {
    let presented = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    authenticate_key(state, presented).await
}

/// Resolves a presented API key to a customer (cached for
/// [`KEY_CACHE_TTL`]): the one check behind every way a key is given.
pub async fn authenticate_key(state: &AppState, presented: &str) -> Result<CustomerId, ApiError> {
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
            Err(ApiError::new(
                ErrorCode::Internal,
                "the relay could not check the key; try again",
            ))
        }
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let mut health = serde_json::json!({
        "status": "ok",
        "nodes": state.registry.len(),
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": spareband_protocol::PROTOCOL_VERSION,
    });
    // A relay that lost NATS still serves its own nodes: it stays "ok" and
    // says what it lost.
    if let Some(c) = state.cluster.get() {
        health["cluster"] = serde_json::json!({
            "connected": c.connected(),
            "relays": c.members().len(),
        });
    }
    axum::Json(health).into_response()
}

/// `GET /v1/relay-key`: the public key receipts are signed with.
async fn relay_key(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(serde_json::json!({
        "algorithm": "ed25519",
        "public_key": hex::encode(state.relay_key.0.verifying_key().to_bytes()),
    }))
    .into_response()
}

/// `GET /v1/proxy-ca.pem`: the CA certificate `mode-fetch` tunnels present
/// certificates from (public, like any CA certificate); 404 on a relay
/// without a proxy port.
async fn proxy_ca(State(state): State<Arc<AppState>>) -> Response {
    match &state.proxy_ca {
        Some(ca) => (
            [(http::header::CONTENT_TYPE, "application/x-pem-file")],
            ca.pem().to_string(),
        )
            .into_response(),
        None => ApiError::new(
            ErrorCode::NotFound,
            "this relay has no proxy port (proxy_listen)",
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Whether a request may read `/metrics`. With `metrics_token` set: exactly
/// when it carries that token, from anywhere (what a scraper on another
/// machine, or behind the operator's proxy, does). Without one: only a
/// request made straight from the relay's machine, which excludes a
/// loopback peer that is a trusted proxy (a reverse proxy on this machine
/// that adds no header, as nginx does by default) and any request carrying a
/// forwarding header (a proxy that does add one, trusted or not).
fn metrics_allowed(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if let Some(token) = &state.config.metrics_token {
        return match bearer(req.headers()) {
            Some(presented) if token.matches(presented) => Ok(()),
            _ => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "metrics need the metrics token: send Authorization: Bearer <metrics_token>",
            )),
        };
    }
    let direct = req.extensions().get::<ConnInfo>().is_some_and(|c| {
        let peer = crate::peer::canonical(c.peer.ip());
        peer.is_loopback() && !state.geo.is_trusted(peer)
    }) && !request::FORWARDING_HEADERS
        .iter()
        .any(|h| req.headers().contains_key(*h));
    if direct {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unauthorized,
            "metrics are only served to clients on the relay's own machine, not through a proxy; \
             set metrics_token to scrape from elsewhere",
        ))
    }
}

/// Prometheus metrics: see [`metrics_allowed`] for who may read them.
async fn metrics(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(e) = metrics_allowed(&state, &req) {
        return e.into_response();
    }
    state.metrics.ledger_depth.set(state.ledger.queue_depth());
    (
        [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// Any path no route takes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such endpoint; see /v1/openapi.json",
    )
}

/// A known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method; see /v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn doc() -> serde_json::Value {
        serde_json::from_str(OPENAPI).expect("the OpenAPI document is valid JSON")
    }

    #[test]
    fn the_document_lists_exactly_the_served_routes() {
        let doc = doc();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let served: BTreeSet<_> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn the_document_lists_exactly_the_error_codes_with_their_statuses() {
        let doc = doc();
        let code =
            &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"];
        let listed: BTreeSet<&str> = code["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let real: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, real);
        let description = code["description"].as_str().unwrap();
        for c in ErrorCode::ALL {
            let entry = format!("{} {}", c.status().as_u16(), c.as_str());
            assert!(description.contains(&entry), "missing '{entry}'");
        }
    }

    /// The document's pattern of refused header names is built from the
    /// lists the relay checks, so neither can change alone.
    #[test]
    fn the_document_refuses_exactly_the_headers_the_relay_refuses() {
        let doc = doc();
        let names = &doc["components"]["schemas"]["FetchRequest"]["properties"]["headers"]
            ["propertyNames"]["not"]["pattern"];
        let any_case = |s: &&str| -> String {
            s.chars()
                .map(|c| match c.is_ascii_alphabetic() {
                    true => format!("[{}{}]", c.to_ascii_uppercase(), c),
                    false => c.to_string(),
                })
                .collect()
        };
        let refused: Vec<String> = spareband_protocol::HOP_BY_HOP
            .iter()
            .chain(request::CONNECTION_HEADERS)
            .chain(request::FORWARDING_HEADERS)
            .chain(request::REFUSED_HEADERS)
            .map(any_case)
            .collect();
        let prefixes: Vec<String> = request::REFUSED_PREFIXES.iter().map(any_case).collect();
        let expected = format!("^(?:(?:{})$|{})", refused.join("|"), prefixes.join("|"));
        assert_eq!(
            names.as_str(),
            Some(expected.as_str()),
            "update openapi.json"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        fn walk(v: &serde_json::Value, doc: &serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        let target = doc.pointer(r.trim_start_matches('#'));
                        assert!(target.is_some(), "dangling $ref {r}");
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        walk(&doc, &doc);
    }
}
