//! `order-list`: `GET /orders?limit=20&cursor=...` → the member's own orders, newest first.

use cafe::services::orders::{self, ListQuery};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("order-list", &req, &app.metrics, list(&req, app)).await
}

async fn list(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    let query = ListQuery::parse(
        http::query_param(req, "limit").as_deref(),
        http::query_param(req, "cursor").as_deref(),
    )?;
    let page = orders::list_orders(app, &member, &query).await?;
    Ok(http::success(200, &page))
}
