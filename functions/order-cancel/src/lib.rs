//! `order-cancel`: `DELETE /order/{orderId}/cancel` → 200. A pending order is cancelled; a paid
//! one gets its stock back and a durable refund attempt in the same write, then is refunded
//! within the invocation's deadline (or by `payment-reconcile` if that fails).

use cafe::services::orders;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;
/// Charges, refunds or reconciles: in production this function refuses to start without a real
/// payment gateway (`PAYMENT_GATEWAY_URL`, https, and `PAYMENT_GATEWAY_SECRET_ARN`).
pub const GATEWAY: cafe::gateway::GatewayUse = cafe::gateway::GatewayUse::MovesMoney;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("order-cancel", &req, &app.metrics, cancel(&req, app)).await
}

async fn cancel(req: &Request, app: &App) -> Result<Response<Body>> {
    let deadline = cafe::deadline::Deadline::of_request(req, app.clock.now());
    let member = app.authenticate(req).await?;
    let order_id = http::path_param(req, "orderId")?;
    let cancelled = orders::cancel_order_within(app, &member, &order_id, deadline).await?;
    Ok(http::success(200, &cancelled))
}
