//! `order-create`: `POST /order` → 201 a `PENDING_PAYMENT` order priced from the current items.

use cafe::services::orders::{self, CreateOrderRequest};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("order-create", &req, &app.metrics, create(&req, app)).await
}

async fn create(req: &Request, app: &App) -> Result<Response<Body>> {
    // Auth first (401, then 403 for a member not in SERVICE), then the body, then lookups. The
    // member is read with the items (one `BatchGetItem`) and judged there; only a refused body
    // reads the member on its own, to answer 401/403 before 400.
    let caller = app.verified_caller(req).await?;
    let request: CreateOrderRequest = match http::parse_body(req) {
        Ok(request) => request,
        Err(refused) => {
            app.member_in_service(&caller).await?;
            return Err(refused);
        }
    };
    let order = orders::create_order(app, &caller, &request).await?;
    Ok(http::success(201, &order))
}
