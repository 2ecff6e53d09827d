//! `live-disconnect`: the live WebSocket API's `$disconnect` route: forgets the connection and
//! its subscriptions (`docs/live.md`). API Gateway makes this call best effort; a connection
//! whose `$disconnect` never came is forgotten on the sender's first 410, or by its TTL.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use cafe::App;
use cafe::services::live;
use serde_json::{Value, json};

/// This function checks no token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(event: ApiGatewayWebsocketProxyRequest, app: &App) -> Value {
    let Some(connection_id) = event.request_context.connection_id.as_deref() else {
        return json!({"statusCode": 400});
    };
    match live::disconnect(app, connection_id).await {
        Ok(()) => json!({"statusCode": 200}),
        Err(error) => {
            tracing::warn!(%error, "could not forget a closed live connection");
            json!({"statusCode": error.wire().status.as_u16()})
        }
    }
}
