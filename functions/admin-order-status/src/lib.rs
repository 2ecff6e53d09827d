//! `admin-order-status`: `PUT /admin/orders/{orderId}/status` → 200. Staff move a paid order one
//! step: `COMPLETED → PREPARING → READY → PICKED_UP`, each with a history row and an event.
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-order-status", &req, &app.metrics, advance(&req, app)).await
}

async fn advance(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate_staff(req, Role::Staff).await?;
    let order_id = http::path_param(req, "orderId")?;
    let request: staff::FulfilmentRequest = http::parse_body(req)?;
    let step = staff::advance_order(app, &member, &order_id, &request).await?;
    Ok(http::success(200, &step))
}
