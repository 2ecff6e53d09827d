//! `admin-order-list`: `GET /admin/orders?status=COMPLETED&limit=20&cursor=...` → 200. The
//! fulfilment queue: paid orders in one status, oldest first.
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::orders::ListQuery;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-order-list", &req, &app.metrics, list(&req, app)).await
}

async fn list(req: &Request, app: &App) -> Result<Response<Body>> {
    app.authenticate_staff(req, Role::Staff).await?;
    let status = staff::parse_queue_status(http::query_param(req, "status").as_deref())?;
    let query = ListQuery::parse(
        http::query_param(req, "limit").as_deref(),
        http::query_param(req, "cursor").as_deref(),
    )?;
    let page = staff::queued_orders(app, status, &query).await?;
    Ok(http::success(200, &page))
}
