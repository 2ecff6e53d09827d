//! `order-get`: `GET /order/{orderId}` → the member's own order with payments and history.

use cafe::services::orders;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("order-get", &req, &app.metrics, get(&req, app)).await
}

async fn get(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    let order_id = http::path_param(req, "orderId")?;
    let order = orders::get_order(app, &member, &order_id).await?;
    Ok(http::success(200, &order))
}
