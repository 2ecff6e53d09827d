//! `items-get`: `GET /items/{itemId}` → 200 `{itemId, name, price, stock}`, or 404CO000.

use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("items-get", &req, &app.metrics, get_item(&req, app)).await
}

async fn get_item(req: &Request, app: &App) -> Result<Response<Body>> {
    let item_id = http::path_param(req, "itemId")?;
    let item = cafe::services::staff::public_item(app, &item_id).await?;
    Ok(http::success(200, &item))
}
