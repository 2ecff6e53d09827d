//! `admin-item-update`: `PATCH /admin/items/{itemId}` → 200. Staff change name, price or active
//! flag from the version they read (409IT000 if another edit came first).
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-item-update", &req, &app.metrics, update(&req, app)).await
}

async fn update(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate_staff(req, Role::Staff).await?;
    let item_id = http::path_param(req, "itemId")?;
    let request: staff::ItemPatchRequest = http::parse_body(req)?;
    let item = staff::update_item(app, &member, &item_id, &request).await?;
    Ok(http::success(200, &item))
}
