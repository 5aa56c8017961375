//! The one check in front of every protected dashboard route: a signed-in
//! admin, and for anything but GET and HEAD a same-origin request carrying
//! the sign-in's CSRF token.

use super::auth;
use super::checks::{cookie, disabled, same_origin};
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use std::sync::Arc;

/// The one check in front of every protected route.
pub(super) async fn require_sign_in(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return disabled();
    };
    let session = cookie(req.headers()).and_then(|c| admin.auth.signed_in(&c));
    let Some(session) = session else {
        if req.uri().path().starts_with("/admin/api/") {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "sign in to the dashboard first: POST the admin token to /admin/login",
            )
            .into_response();
        }
        return super::pages::sign_in_first();
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

fn forbidden(message: &str) -> Response {
    ApiError::new(ErrorCode::Forbidden, message).into_response()
}
