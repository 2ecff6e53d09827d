//! `order-cancel`: `DELETE /order/{orderId}/cancel` → 200. A pending order is cancelled; a paid
//! one is refunded and its stock given back.

use cafe::services::orders;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Required;

#[tracing::instrument(name = "order-cancel", skip_all)]
pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::respond(cancel(&req, app).await)
}

async fn cancel(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    let order_id = http::path_param(req, "orderId")?;
    let cancelled = orders::cancel_order(app, &member, &order_id).await?;
    Ok(http::success(200, &cancelled))
}
