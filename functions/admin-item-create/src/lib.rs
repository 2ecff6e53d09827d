//! `admin-item-create`: `POST /admin/items` → 201. Staff add an item to the catalogue (version 0),
//! with its history row and `ItemCreated` event in the same write.
//! Staff only: the token's role claim and the stored member's role are both checked
//! ([`cafe::App::authenticate_staff`]).

use cafe::domain::Role;
use cafe::services::staff;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("admin-item-create", &req, &app.metrics, create(&req, app)).await
}

async fn create(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate_staff(req, Role::Staff).await?;
    let request: staff::NewItemRequest = http::parse_body(req)?;
    let item = staff::create_item(app, &member, &request).await?;
    Ok(http::success(201, &item))
}
