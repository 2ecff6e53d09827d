//! `shop-board`: `GET /shop/board` → 200 `{making, ready, at}`: today's pickup numbers being
//! made and ready, oldest first, for the pickup display. Public: no token, and nothing but the
//! numbers (`docs/site.md`).

use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("shop-board", &req, &app.metrics, board(app)).await
}

async fn board(app: &App) -> Result<Response<Body>> {
    let board = cafe::services::floor::board(app).await?;
    Ok(http::success(200, &board))
}
