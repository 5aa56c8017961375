//! The admin dashboard at `/admin`: a sign-in with the admin token, pages
//! drawn in the browser from a JSON API under `/admin/api/`, and CSV exports.
//! Everything is served by the relay itself (no CDN; charts are hand-made
//! SVG). Every route except the sign-in itself requires a session: the
//! protected router is built from [`ROUTES`] alone, behind one check.

pub mod auth;
pub mod data;

use crate::api::error::{ApiError, ErrorCode};
use crate::server::ConnInfo;
use crate::AppState;
use auth::{AdminAuth, Refusal, Session, SESSION_COOKIE, SESSION_TTL};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Every route that needs a session, as `(method, path)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/admin"),
    ("get", "/admin/nodes"),
    ("get", "/admin/nodes/{id}"),
    ("get", "/admin/epochs"),
    ("get", "/admin/assets/app.js"),
    ("get", "/admin/assets/app.css"),
    ("post", "/admin/logout"),
    ("get", "/admin/api/overview"),
    ("get", "/admin/api/nodes"),
    ("get", "/admin/api/nodes.csv"),
    ("get", "/admin/api/nodes/{id}"),
    ("get", "/admin/api/epochs"),
    ("get", "/admin/api/epochs/{epoch}/nodes.csv"),
];

/// The only routes that answer without a session: the sign-in form and its
/// submission.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[("get", "/admin/login"), ("post", "/admin/login")];

/// Largest sign-in form accepted.
const MAX_LOGIN_BODY: usize = 4096;
/// How often the requests-per-second figure is sampled.
pub const RATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: one minute's worth.
const RATE_SAMPLES: usize = 13;

const SHELL: &str = include_str!("assets/shell.html");
const LOGIN: &str = include_str!("assets/login.html");
const LOGIN_STYLE: &str = include_str!("assets/login.css");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Pages allow only the relay's own scripts and styles; the sign-in page's
/// one inline style is allowed by its hash.
static LOGIN_CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(LOGIN_STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
});
const APP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's state: access control and the request-rate samples.
pub struct Admin {
    /// Sign-in and sessions.
    pub auth: AdminAuth,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Admin {
    /// A dashboard guarded by `auth`.
    pub fn new(auth: AdminAuth) -> Self {
        Admin {
            auth,
            samples: Mutex::new(VecDeque::with_capacity(RATE_SAMPLES)),
        }
    }

    /// Records the jobs-finished counter (every [`RATE_SAMPLE_INTERVAL`]).
    pub fn sample(&self, jobs_total: u64) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() == RATE_SAMPLES {
            s.pop_front();
        }
        s.push_back((Instant::now(), jobs_total));
    }

    /// Jobs per second over the samples held, now included.
    pub fn requests_per_second(&self, jobs_total: u64) -> f64 {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        match s.front() {
            Some((at, first)) if at.elapsed() >= Duration::from_secs(1) => {
                let rps = jobs_total.saturating_sub(*first) as f64 / at.elapsed().as_secs_f64();
                (rps * 10.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}

/// The dashboard's routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let mut protected = Router::new();
    for (method, path) in ROUTES {
        protected = protected.route(path, handler(method, path));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .merge(protected)
        .layer(middleware::map_response(security_headers))
}

fn handler(method: &str, path: &str) -> MethodRouter<Arc<AppState>> {
    match (method, path) {
        ("get", "/admin" | "/admin/nodes" | "/admin/nodes/{id}" | "/admin/epochs") => get(shell),
        ("get", "/admin/assets/app.js") => get(|| async {
            (
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                APP_JS,
            )
        }),
        ("get", "/admin/assets/app.css") => {
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS) })
        }
        ("post", "/admin/logout") => post(logout),
        ("get", "/admin/api/overview") => get(api_overview),
        ("get", "/admin/api/nodes") => get(api_nodes),
        ("get", "/admin/api/nodes.csv") => get(api_nodes_csv),
        ("get", "/admin/api/nodes/{id}") => get(api_node),
        ("get", "/admin/api/epochs") => get(api_epochs),
        ("get", "/admin/api/epochs/{epoch}/nodes.csv") => get(api_epoch_csv),
        _ => unreachable!("every route in ROUTES has a handler: {method} {path}"),
    }
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(APP_CSP),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on the
    // sign-in form's POST, and the same-origin check could not pass.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

fn disabled() -> Response {
    ApiError::new(
        ErrorCode::NotFound,
        "the admin dashboard is off: start the relay with admin_token in its config or SPAREBAND_ADMIN_TOKEN set",
    )
    .into_response()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether a state-changing request comes from the dashboard's own pages:
/// browsers say so in `Sec-Fetch-Site` and `Origin`.
fn same_origin(req_headers: &HeaderMap, authority: Option<&str>) -> bool {
    if let Some(site) = req_headers.get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match req_headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let host =
                authority.or_else(|| req_headers.get(header::HOST).and_then(|h| h.to_str().ok()));
            match (origin.split_once("://"), host) {
                (Some((scheme, rest)), Some(host)) => {
                    (scheme == "https" || scheme == "http") && rest.eq_ignore_ascii_case(host)
                }
                _ => false,
            }
        }
        Some(Err(_)) => false,
    }
}

fn forbidden(message: &str) -> Response {
    ApiError::new(ErrorCode::Forbidden, message).into_response()
}

/// The one check in front of every protected route.
async fn require_session(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    let session = cookie(req.headers()).and_then(|c| admin.auth.session(&c));
    let Some(session) = session else {
        if req.uri().path().starts_with("/admin/api/") {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "sign in to the dashboard first: POST the admin token to /admin/login",
            )
            .into_response();
        }
        return sign_in_first();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let authority = req.uri().authority().map(|a| a.as_str().to_string());
        if !same_origin(req.headers(), authority.as_deref()) {
            return forbidden("cross-site requests are refused");
        }
        let csrf_ok = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| auth::same(v, &session.csrf));
        if !csrf_ok {
            return forbidden("missing or wrong x-csrf-token header");
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn sign_in_first() -> Response {
    login_html(StatusCode::UNAUTHORIZED, "Sign in to see the dashboard.")
}

fn login_html(status: StatusCode, message: &str) -> Response {
    let body = LOGIN
        .replace("{{STYLE}}", LOGIN_STYLE)
        .replace("{{MESSAGE}}", &escape(message));
    let mut res = html(status, body);
    if let Ok(v) = HeaderValue::from_str(&LOGIN_CSP) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// HTML text escaping.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn login_page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    if cookie(req.headers()).is_some_and(|c| admin.auth.session(&c).is_some()) {
        return redirect("/admin");
    }
    login_html(StatusCode::OK, "")
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn client_ip(state: &AppState, req: &Request) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.peer.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    state.geo.client_ip(peer, req.headers())
}

/// `POST /admin/login` with a form field `token`.
async fn login(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if !same_origin(req.headers(), authority.as_deref()) {
        tracing::warn!(origin = ?req.headers().get(header::ORIGIN), site = ?req.headers().get("sec-fetch-site"), host = ?req.headers().get(header::HOST), "admin sign-in from another site refused");
        return login_html(
            StatusCode::FORBIDDEN,
            "Sign in from the dashboard's own page.",
        );
    }
    let ip = client_ip(&state, &req);
    let body = match axum::body::to_bytes(req.into_body(), MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(_) => return login_html(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large."),
    };
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return login_html(StatusCode::BAD_REQUEST, "Enter the admin token.");
    };
    match admin.auth.sign_in(ip, &token) {
        Ok((value, _)) => {
            tracing::info!(%ip, "admin signed in");
            let cookie = format!(
                "{SESSION_COOKIE}={value}; Path=/admin; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                SESSION_TTL.as_secs()
            );
            let mut res = redirect("/admin");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err((Refusal::Wrong, delay)) => {
            tracing::warn!(%ip, "admin sign-in failed");
            tokio::time::sleep(delay).await;
            login_html(StatusCode::UNAUTHORIZED, "That token is not right.")
        }
        Err((Refusal::LockedOut(left), _)) => {
            tracing::warn!(%ip, "admin sign-in refused: locked out");
            let minutes = left.as_secs().div_ceil(60);
            let mut res = login_html(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed attempts from your address. Try again in {minutes} minute(s)."
                ),
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(left.as_secs().max(1)),
            );
            res
        }
    }
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let (Some(admin), Some(c)) = (state.admin.as_ref(), cookie(&headers)) {
        admin.auth.sign_out(&c);
    }
    let mut res = redirect("/admin/login");
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sb_admin=; Path=/admin; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    res
}

async fn shell(axum::Extension(session): axum::Extension<Session>) -> Response {
    html(
        StatusCode::OK,
        SHELL.replace("{{CSRF}}", &escape(&session.csrf)),
    )
}

fn internal(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "dashboard query failed");
    ApiError::new(
        ErrorCode::Internal,
        "the dashboard could not read the ledger; try again",
    )
    .into_response()
}

async fn api_overview(State(state): State<Arc<AppState>>) -> Response {
    let total = state.metrics.jobs_total();
    let rps = state
        .admin
        .as_ref()
        .map_or(0.0, |a| a.requests_per_second(total));
    match data::overview(&state, rps).await {
        Ok(o) => axum::Json(o).into_response(),
        Err(e) => internal(e),
    }
}

/// Reads the nodes table's query string; unknown parameters are an error,
/// so a typo is never silently ignored.
fn node_query(query: Option<&str>) -> Result<data::NodeQuery, ApiError> {
    let mut q = data::NodeQuery {
        sort: data::SortKey::BytesEpoch,
        desc: true,
        q: None,
        kind: None,
        online: None,
        page: 1,
        per_page: data::DEFAULT_PER_PAGE,
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "sort" => {
                q.sort = data::SortKey::parse(&v).ok_or_else(|| {
                    let names: Vec<&str> = data::SortKey::ALL.iter().map(|(n, _)| *n).collect();
                    ApiError::invalid_request(format!("sort must be one of {}", names.join(", ")))
                })?
            }
            "order" => {
                q.desc = match v.as_ref() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(ApiError::invalid_request("order must be asc or desc")),
                }
            }
            "q" => {
                if v.chars().count() > 100 {
                    return Err(ApiError::invalid_request("q is at most 100 characters"));
                }
                q.q = Some(v.into_owned());
            }
            "kind" => {
                q.kind = match v.as_ref() {
                    "" | "all" => None,
                    "extension" | "native" => Some(v.into_owned()),
                    _ => {
                        return Err(ApiError::invalid_request(
                            "kind must be extension, native or all",
                        ))
                    }
                }
            }
            "status" => {
                q.online = match v.as_ref() {
                    "" | "all" => None,
                    "online" => Some(true),
                    "offline" => Some(false),
                    _ => {
                        return Err(ApiError::invalid_request(
                            "status must be online, offline or all",
                        ))
                    }
                }
            }
            "page" => {
                q.page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=1_000_000).contains(p))
                    .ok_or_else(|| {
                        ApiError::invalid_request("page must be a number from 1 to 1000000")
                    })?
            }
            "per_page" => {
                q.per_page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=data::MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        ApiError::invalid_request(format!(
                            "per_page must be a number from 1 to {}",
                            data::MAX_PER_PAGE
                        ))
                    })?
            }
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown parameter '{}'",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    Ok(q)
}

async fn api_nodes(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let q = match node_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match data::nodes(&state, &q).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => internal(e),
    }
}

/// One CSV field, quoted when it must be. No value the relay stores starts
/// with a spreadsheet formula character, but a leading one is neutralised
/// anyway.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<i64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_response(name: &str, rows: Vec<Vec<String>>) -> Response {
    let mut out = String::new();
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    let mut res = (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        Body::from(out),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

async fn api_nodes_csv(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let q = match node_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let epoch = data::current_epoch(&state);
    match data::all_nodes(&state, &q).await {
        Ok(nodes) => {
            let mut rows = vec![[
                "node_id",
                "payout_address",
                "client_kind",
                "country",
                "online",
                "last_seen_ms",
                "bytes_epoch",
                "bytes_all",
                "jobs_ok",
                "jobs_failed",
                "earnings_epoch",
                "earnings_all",
            ]
            .map(String::from)
            .to_vec()];
            for n in nodes {
                rows.push(vec![
                    n.node_id,
                    n.payout_address.unwrap_or_default(),
                    n.client_kind,
                    n.country.unwrap_or_default(),
                    n.online.to_string(),
                    n.last_seen_ms.to_string(),
                    n.bytes_epoch.to_string(),
                    n.bytes_all.to_string(),
                    n.jobs_ok.to_string(),
                    n.jobs_failed.to_string(),
                    n.earnings_epoch,
                    n.earnings_all,
                ]);
            }
            csv_response(&format!("spareband-nodes-epoch-{}.csv", epoch.index), rows)
        }
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

async fn api_node(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if let Err(e) = node_id_param(&id) {
        return e.into_response();
    }
    match data::node(&state, &id).await {
        Ok(Some(n)) => axum::Json(n).into_response(),
        Ok(None) => {
            ApiError::new(ErrorCode::NotFound, "no node with that id has connected").into_response()
        }
        Err(e) => internal(e),
    }
}

async fn api_epochs(State(state): State<Arc<AppState>>) -> Response {
    match crate::api::rewards::list(&state.db).await {
        Ok(list) => axum::Json(serde_json::json!({
            "current": data::current_epoch(&state),
            "epochs": list,
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn api_epoch_csv(State(state): State<Arc<AppState>>, Path(epoch): Path<String>) -> Response {
    let Some(epoch) = epoch.parse::<i64>().ok().filter(|e| *e >= 1) else {
        return ApiError::invalid_request("the epoch must be a number from 1").into_response();
    };
    let exists = sqlx::query("SELECT 1 FROM epochs WHERE epoch = $1")
        .bind(epoch)
        .fetch_optional(state.db.pool())
        .await;
    match exists {
        Err(e) => return internal(e),
        Ok(None) => {
            return ApiError::new(ErrorCode::NotFound, format!("epoch {epoch} is not closed"))
                .into_response()
        }
        Ok(Some(_)) => {}
    }
    match data::epoch_nodes(&state, epoch).await {
        Ok(list) => {
            let mut rows = vec![["epoch", "node_id", "payout_address", "bytes", "amount"]
                .map(String::from)
                .to_vec()];
            for r in list {
                rows.push(vec![
                    epoch.to_string(),
                    r.node_id,
                    r.address,
                    r.bytes.to_string(),
                    r.amount,
                ]);
            }
            csv_response(&format!("spareband-epoch-{epoch}.csv"), rows)
        }
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("-5"), "-5");
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("relay.example:8443"));
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://relay.example:8443"),
        );
        assert!(same_origin(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, None));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, None));
    }

    #[test]
    fn the_nodes_query_is_strict() {
        assert!(node_query(Some(
            "sort=bytes_all&order=asc&page=2&per_page=10&status=online&kind=native&q=ab"
        ))
        .is_ok());
        for bad in [
            "sort=drop%20table",
            "order=sideways",
            "per_page=0",
            "per_page=501",
            "page=0",
            "kind=robot",
            "status=maybe",
            "colour=red",
        ] {
            let e = node_query(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
