//! `auth-logout`: `POST /auth/logout` `{refreshToken, everywhere?}` → 200 `{memberId,
//! everywhere}`; the refresh token's whole family is revoked, and with `everywhere` every session
//! of the member ends (docs/auth.md, "Sessions").

use cafe::services::members;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LogoutRequest {
    refresh_token: String,
    #[serde(default)]
    everywhere: bool,
}

impl http::Validate for LogoutRequest {
    // A malformed token is an auth failure (401CO000), decided by the use case.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// This function checks no access token: holding the refresh token is the credential.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("auth-logout", &req, &app.metrics, log_out(&req, app)).await
}

async fn log_out(req: &Request, app: &App) -> Result<Response<Body>> {
    let body: LogoutRequest = http::parse_body(req)?;
    let done = members::log_out(app, &body.refresh_token, body.everywhere).await?;
    Ok(http::success(200, &done))
}
