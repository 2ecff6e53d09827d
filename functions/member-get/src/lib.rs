//! `member-get`: `GET /member/{memberId}` → 200 the caller's own profile with its history.

use cafe::services::members;
use cafe::{App, Error, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("member-get", &req, &app.metrics, get_profile(&req, app)).await
}

async fn get_profile(req: &Request, app: &App) -> Result<Response<Body>> {
    let caller = app.verified_caller(req).await?;
    if http::path_param(req, "memberId")? != caller.member_id {
        // Someone else's profile: 403, once the caller is known to be a member at all (401).
        app.authenticate(req).await?;
        return Err(Error::Forbidden);
    }
    // The profile and its history in one read, which authenticates the caller too.
    let profile = members::own_profile(app, &caller).await?;
    Ok(http::success(200, &profile))
}
