//! `live-subscribe`: the live WebSocket API's `subscribe` route, and `$default` (a `ping`, or
//! anything else, which is answered with an error frame). The answer is the route response
//! the client receives: `subscribed`, `pong` or `error` (`docs/live.md`).

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use cafe::App;
use cafe::services::live;
use serde_json::{Value, json};

/// This function checks no token (the connection's grant came from its ticket).
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(event: ApiGatewayWebsocketProxyRequest, app: &App) -> Value {
    let Some(connection_id) = event.request_context.connection_id.as_deref() else {
        return json!({"statusCode": 400});
    };
    let body = event.body.as_deref().unwrap_or_default();
    let reply = match live::on_frame(app, connection_id, body).await {
        Ok(reply) => reply,
        Err(error) => cafe::domain::live::error_frame(&error),
    };
    json!({"statusCode": 200, "body": reply})
}
