//! `auth-refresh`: `POST /auth/refresh` → 200 a new `{memberId, accessToken, refreshToken}`;
//! the presented refresh token is used up.

use cafe::services::members;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshRequest {
    refresh_token: String,
}

impl http::Validate for RefreshRequest {
    // A malformed token is an auth failure (401CO000), decided by the use case.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// This function signs tokens.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Signs;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("auth-refresh", &req, &app.metrics, refresh(&req, app)).await
}

async fn refresh(req: &Request, app: &App) -> Result<Response<Body>> {
    let body: RefreshRequest = http::parse_body(req)?;
    let pair = members::refresh(app, &body.refresh_token).await?;
    Ok(http::success(200, &pair))
}
