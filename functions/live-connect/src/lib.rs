//! `live-connect`: the live WebSocket API's `$connect` route (`docs/live.md`). Redeems the
//! `ticket` query parameter once (`POST /live/ticket` issued it) and records the connection
//! with its member and role, for 2 hours; without a ticket the connection is anonymous
//! (display only). An unknown, used, expired or forged ticket answers 401, which refuses the
//! connection. Nothing is ever posted from here: the connection is not open until this returns.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use cafe::App;
use cafe::services::live;
use serde_json::{Value, json};

/// This function checks no token (the ticket stands in for it).
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

pub async fn handle(event: ApiGatewayWebsocketProxyRequest, app: &App) -> Value {
    let Some(connection_id) = event.request_context.connection_id.as_deref() else {
        return answer(&cafe::Error::invalid("connectionId"));
    };
    let ticket = event.query_string_parameters.first("ticket");
    match live::connect(app, connection_id, ticket).await {
        Ok(grant) => {
            tracing::info!(
                anonymous = grant.member_id.is_none(),
                role = grant.role.as_str(),
                "live connection opened"
            );
            json!({"statusCode": 200})
        }
        Err(error) => answer(&error),
    }
}

/// The refusal in the contract's format (API Gateway closes the handshake with its status).
fn answer(error: &cafe::Error) -> Value {
    let wire = error.wire();
    json!({
        "statusCode": wire.status.as_u16(),
        "body": json!({"status": "fail", "error": {"code": wire.code, "detailMessage": wire.message}}).to_string(),
    })
}
