//! `items-list`: `GET /items` → 200 `{items:[{itemId, name, price, stock}]}`.

use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("items-list", &req, &app.metrics, list_items(app)).await
}

async fn list_items(app: &App) -> Result<Response<Body>> {
    let items = cafe::services::staff::public_items(app).await?;
    Ok(http::success(200, &json!({ "items": items })))
}
