//! `items-get`: `GET /items/{itemId}` → 200 `{itemId, name, price, stock}`, or 404CO000.

use cafe::{App, Error, Result, http};
use lambda_http::{Body, Request, Response};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

#[tracing::instrument(name = "items-get", skip_all)]
pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::respond(get_item(&req, app).await)
}

async fn get_item(req: &Request, app: &App) -> Result<Response<Body>> {
    let item_id = http::path_param(req, "itemId")?;
    let item = app
        .store
        .get_item(&item_id)
        .await?
        .ok_or(Error::NotFound("item"))?;
    Ok(http::success(200, &item))
}
