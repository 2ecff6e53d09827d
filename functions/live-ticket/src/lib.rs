//! `live-ticket`: `POST /live/ticket` (bearer token) → 200 `{ticket, expiresAt, url}`: a
//! single-use ticket, good for 30 s, bound to the caller's member id and role, that the live
//! WebSocket's `$connect` redeems (`docs/live.md`). Browsers cannot set headers on a WebSocket
//! and a token in a query string ends up in access logs; a ticket that dies on first use does
//! not matter there.

use cafe::services::live;
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("live-ticket", &req, &app.metrics, issue(&req, app)).await
}

async fn issue(req: &Request, app: &App) -> Result<Response<Body>> {
    let member = app.authenticate(req).await?;
    let answer = live::issue_ticket(app, &member, live_url(req)).await?;
    Ok(http::success(200, &answer))
}

/// `LIVE_URL` (the WebSocket API's `wss://` URL on AWS); unset, the live endpoint of the host
/// that was asked (`cafe-local` serves it at `/live`).
fn live_url(req: &Request) -> String {
    match std::env::var("LIVE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let host = req
                .headers()
                .get(lambda_http::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                })
                .unwrap_or("127.0.0.1:3000");
            format!("ws://{host}/live")
        }
    }
}
