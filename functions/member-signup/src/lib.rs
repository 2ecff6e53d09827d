//! `member-signup`: `POST /member` → 201 `{memberId, accessToken, refreshToken}`.

use cafe::domain::Gender;
use cafe::services::members::{self, SignUp};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignUpRequest {
    name: String,
    email: String,
    phone_number: String,
    gender: Gender,
    birth: String,
    password: String,
}

impl http::Validate for SignUpRequest {
    fn validate(&self) -> Result<()> {
        members::check_name(&self.name)?;
        members::check_email(&self.email)?;
        members::check_phone_number(&self.phone_number)?;
        members::parse_birth(&self.birth)?;
        members::check_password(&self.password)
    }
}

/// This function signs tokens.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Signs;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("member-signup", &req, &app.metrics, sign_up(&req, app)).await
}

async fn sign_up(req: &Request, app: &App) -> Result<Response<Body>> {
    let body: SignUpRequest = http::parse_body(req)?;
    let input = SignUp {
        birth: members::parse_birth(&body.birth)?,
        name: body.name,
        email: body.email,
        phone_number: body.phone_number,
        gender: body.gender,
        password: body.password,
        source_ip: http::source_ip(req),
    };
    let pair = members::sign_up(app, input).await?;
    Ok(http::success(201, &pair))
}
