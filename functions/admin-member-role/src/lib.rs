//! `admin-member-role`: `PUT /admin/members/{memberId}/role` → 200. An admin sets another member's
//! role (`CUSTOMER`, `STAFF`, `ADMIN`); the member needs a fresh token to use it.
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-member-role", &req, &app.metrics, grant(&req, app)).await
}

async fn grant(req: &Request, app: &App) -> Result<Response<Body>> {
    let admin = app.authenticate_staff(req, Role::Admin).await?;
    let member_id = http::path_param(req, "memberId")?;
    let request: staff::RoleRequest = http::parse_body(req)?;
    let change = staff::grant_role(app, &admin, &member_id, &request).await?;
    Ok(http::success(200, &change))
}
