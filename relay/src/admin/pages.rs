//! The dashboard's pages: the sign-in form and its submission, sign-out,
//! the page shell the browser draws into, its assets, and the security
//! headers on every dashboard answer.

use super::auth::{SignIn, SignInRefused, SIGN_IN_COOKIE, SIGN_IN_TTL};
use super::checks::{cookie, disabled, same_origin};
use crate::server::ConnInfo;
use crate::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

/// Largest sign-in form accepted.
const MAX_LOGIN_BODY: usize = 4096;

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

pub(super) async fn security_headers(mut res: Response) -> Response {
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

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(super) fn sign_in_first() -> Response {
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

pub(super) async fn login_page(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    if cookie(req.headers()).is_some_and(|c| admin.auth.signed_in(&c).is_some()) {
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
pub(super) async fn login(State(state): State<Arc<AppState>>, req: Request) -> Response {
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
                "{SIGN_IN_COOKIE}={value}; Path=/admin; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                SIGN_IN_TTL.as_secs()
            );
            let mut res = redirect("/admin");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err((SignInRefused::Wrong, delay)) => {
            tracing::warn!(%ip, "admin sign-in failed");
            tokio::time::sleep(delay).await;
            login_html(StatusCode::UNAUTHORIZED, "That token is not right.")
        }
        Err((SignInRefused::LockedOut(left), _)) => {
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

pub(super) async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
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

pub(super) async fn shell(axum::Extension(session): axum::Extension<SignIn>) -> Response {
    html(
        StatusCode::OK,
        SHELL.replace("{{CSRF}}", &escape(&session.csrf)),
    )
}

pub(super) async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

pub(super) async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}
