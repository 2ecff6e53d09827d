//! `auth-login`: `POST /auth/login` → 200 `{memberId, accessToken, refreshToken}`.

use cafe::services::members;
use cafe::{App, Error, Result, http};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoginRequest {
    email: String,
    password: String,
}

impl http::Validate for LoginRequest {
    fn validate(&self) -> Result<()> {
        members::check_email(&self.email)?;
        // Any length that sign-up could have stored is worth a verification; more is not.
        if self.password.is_empty() || self.password.chars().count() > 128 {
            return Err(Error::invalid("password"));
        }
        Ok(())
    }
}

/// This function signs tokens.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Signs;

/// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`; the local server
/// puts the peer address there). Never `X-Forwarded-For`, which the caller writes.
fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    }
}

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("auth-login", &req, &app.metrics, log_in(&req, app)).await
}

async fn log_in(req: &Request, app: &App) -> Result<Response<Body>> {
    let body: LoginRequest = http::parse_body(req)?;
    let pair = members::log_in(app, &body.email, &body.password, source_ip(req).as_deref()).await?;
    Ok(http::success(200, &pair))
}
