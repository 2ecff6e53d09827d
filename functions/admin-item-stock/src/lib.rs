//! `admin-item-stock`: `POST /admin/items/{itemId}/stock` → 200. Staff add to (`ADD`) or set
//! (`SET`) an item's stock with a reason, from the version they read.
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-item-stock", &req, &app.metrics, restock(&req, app)).await
}

async fn restock(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate_staff(req, Role::Staff).await?;
    let item_id = http::path_param(req, "itemId")?;
    let request: staff::StockRequest = http::parse_body(req)?;
    let item = staff::change_stock(app, &member, &item_id, &request).await?;
    Ok(http::success(200, &item))
}
