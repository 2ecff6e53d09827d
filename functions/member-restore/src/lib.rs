//! `member-restore`: `POST /member/{memberId}/restore` → 200; `WITHDRAWN` (under 30 days) →
//! `SERVICE`.

use cafe::services::members;
use cafe::{App, Error, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("member-restore", &req, &app.metrics, restore(&req, app)).await
}

async fn restore(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    if http::path_param(req, "memberId")? != member.member_id {
        return Err(Error::Forbidden);
    }
    let change = members::restore(app, &member).await?;
    Ok(http::success(200, &change))
}
