//! `admin-item-list`: `GET /admin/items` → 200 `[{itemId, name, price, stock, active, version}]`.
//! Every item, inactive ones too, with the version an edit must name: what a clerk reads before
//! an edit, and again after a 409IT000 (another edit got there first), and how an item taken off
//! sale is found to put it back. Staff only: the token's role claim and the stored member's role
//! are both checked ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-item-list", &req, &app.metrics, list(&req, app)).await
}

async fn list(req: &Request, app: &App) -> Result<Response<Body>> {
    app.authenticate_staff(req, Role::Staff).await?;
    let items = staff::all_items(app).await?;
    Ok(http::success(200, &items))
}
