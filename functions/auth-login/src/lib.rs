//! `auth-login`: `POST /auth/login` → 200 `{memberId, accessToken, refreshToken, deviceToken}`.

use cafe::services::members;
use cafe::{App, Error, Result, http};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoginRequest {
    email: String,
    password: String,
    /// The device token an earlier sign-up or log-in answered on this device, if any.
    #[serde(default)]
    device_token: Option<String>,
}

impl http::Validate for LoginRequest {
    fn validate(&self) -> Result<()> {
        members::check_email(&self.email)?;
        // Any length that sign-up could have stored is worth a verification; more is not.
        if self.password.is_empty() || self.password.chars().count() > 128 {
            return Err(Error::invalid("password"));
        }
        let device_token_ok = |token: &String| {
            (1..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
        };
        if self
            .device_token
            .as_ref()
            .is_some_and(|t| !device_token_ok(t))
        {
            return Err(Error::invalid("deviceToken"));
        }
        Ok(())
    }
}

/// This function signs tokens.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Signs;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("auth-login", &req, &app.metrics, log_in(&req, app)).await
}

async fn log_in(req: &Request, app: &App) -> Result<Response<Body>> {
    let body: LoginRequest = http::parse_body(req)?;
    let pair = members::log_in(
        app,
        &body.email,
        &body.password,
        http::source_ip(req).as_deref(),
        body.device_token.as_deref(),
    )
    .await?;
    Ok(http::success(200, &pair))
}
