//! `shop-get`: `GET /shop` → 200 `{open, message, ordersInProgress, room, estimatedWaitMinutes,
//! meanMakeSeconds, madeToday, updatedAt}`. Public: no token (`docs/floor.md`).

use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("shop-get", &req, &app.metrics, shop(app)).await
}

async fn shop(app: &App) -> Result<Response<Body>> {
    let shop = cafe::services::floor::shop(app).await?;
    Ok(http::success(200, &shop))
}
