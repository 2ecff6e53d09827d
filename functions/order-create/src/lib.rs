//! `order-create`: `POST /order` → 201 a `PENDING_PAYMENT` order priced from the current items.

use cafe::services::orders::{self, CreateOrderRequest};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("order-create", &req, app, create(&req, app)).await
}

async fn create(req: &Request, app: &App) -> Result<Response<Body>> {
    // Auth first (401, then 403 for a member not in SERVICE), then the body, then lookups.
    let member = app.authenticate(req).await?;
    member.check_in_service()?;
    let request: CreateOrderRequest = http::parse_body(req)?;
    let order = orders::create_order(app, &member, &request).await?;
    Ok(http::success(201, &order))
}
