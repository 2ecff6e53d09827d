//! `member-get`: `GET /member/{memberId}` → 200 the caller's own profile with its history.

use cafe::services::members;
use cafe::{App, Error, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("member-get", &req, app, get_profile(&req, app)).await
}

async fn get_profile(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    if http::path_param(req, "memberId")? != member.member_id {
        return Err(Error::Forbidden);
    }
    let profile = members::profile(app, &member).await?;
    Ok(http::success(200, &profile))
}
