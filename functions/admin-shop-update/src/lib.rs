//! `admin-shop-update`: `PUT /admin/shop` `{open, message?}` → 200, the shop as `GET /shop`
//! shows it. Staff open or close the shop; while closed, orders and payments are refused
//! (409SH000) before anything is charged (`docs/floor.md`). Staff only: the token's role claim
//! and the stored member's role are both checked ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::floor;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-shop-update", &req, &app.metrics, update(&req, app)).await
}

async fn update(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate_staff(req, Role::Staff).await?;
    let request: floor::ShopRequest = http::parse_body(req)?;
    let shop = floor::set_shop(app, &member, &request).await?;
    Ok(http::success(200, &shop))
}
