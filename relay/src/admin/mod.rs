//! The admin dashboard at `/admin`: a sign-in with the admin token, pages
//! drawn in the browser from a JSON API under `/admin/api/`, and CSV exports.
//! Everything is served by the relay itself (no CDN; charts are hand-made
//! SVG). Every route except the sign-in itself requires a signed-in admin:
//! the protected router is built from [`ROUTES`] alone, behind one check
//! ([`guard`]).
//!
//! - [`auth`]: the admin token, sign-in lockouts and signed-in admins.
//! - [`checks`]: the sign-in cookie and the same-origin check.
//! - [`guard`]: the check in front of every protected route.
//! - [`pages`]: the sign-in page, the page shell, assets and headers.
//! - [`views`]: the JSON API the pages draw from.
//! - [`query`]: the nodes table's query string.
//! - [`export`]: CSV downloads.
//! - [`rate`]: the requests-per-second figure.

pub mod auth;
mod checks;
mod export;
mod guard;
mod pages;
mod query;
pub mod rate;
mod views;

use crate::AppState;
use auth::AdminAuth;
use axum::middleware;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

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

/// The dashboard's state: access control and the request-rate samples.
pub struct Admin {
    /// Sign-in and signed-in admins.
    pub auth: AdminAuth,
    /// Jobs finished per second, sampled.
    pub rate: rate::RateSampler,
}

impl Admin {
    /// A dashboard guarded by `auth`.
    pub fn new(auth: AdminAuth) -> Self {
        Admin {
            auth,
            rate: rate::RateSampler::default(),
        }
    }
}

/// The dashboard's routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let mut protected = Router::new();
    for (method, path) in ROUTES {
        protected = protected.route(path, handler(method, path));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(
        state,
        guard::require_sign_in,
    ));
    Router::new()
        .route("/admin/login", get(pages::login_page).post(pages::login))
        .merge(protected)
        .layer(middleware::map_response(pages::security_headers))
}

fn handler(method: &str, path: &str) -> MethodRouter<Arc<AppState>> {
    match (method, path) {
        ("get", "/admin" | "/admin/nodes" | "/admin/nodes/{id}" | "/admin/epochs") => {
            get(pages::shell)
        }
        ("get", "/admin/assets/app.js") => get(pages::app_js),
        ("get", "/admin/assets/app.css") => get(pages::app_css),
        ("post", "/admin/logout") => post(pages::logout),
        ("get", "/admin/api/overview") => get(views::overview),
        ("get", "/admin/api/nodes") => get(views::nodes),
        ("get", "/admin/api/nodes.csv") => get(export::nodes_csv),
        ("get", "/admin/api/nodes/{id}") => get(views::node),
        ("get", "/admin/api/epochs") => get(views::epochs),
        ("get", "/admin/api/epochs/{epoch}/nodes.csv") => get(export::epoch_csv),
        _ => unreachable!("every route in ROUTES has a handler: {method} {path}"),
    }
}
