//! `live-sender`: invoked by an EventBridge rule on the domain-event bus for each committed
//! order status change (the events `events-publisher` sends from the table's stream), pushes it
//! to the WebSocket connections that may hear it (`docs/live.md`), with API Gateway's
//! `PostToConnection`. Behind the bus rather than on the stream itself, so the stream keeps two
//! readers (the publisher and the history archive), as AWS advises per shard. A connection that
//! is gone (410) is forgotten and the others still get theirs; a failed post is logged and
//! counted, never retried into a duplicate for everyone. Only a failure to read the table fails
//! the invocation, so Lambda retries it: a client drops the repeats by `version`.

use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use cafe::App;
use cafe::domain::DomainEvent;
use cafe::events::eventbridge::BusEvent;
use cafe::services::live::{self, FanOut, Posted, Poster};
use std::sync::Arc;

/// This function checks no token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

/// Posts in flight at once.
pub const CONCURRENT_POSTS: usize = 32;

/// Posts through API Gateway's management API (its endpoint includes the stage).
pub struct ManagementApi {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ManagementApi {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl Poster for ManagementApi {
    async fn post(&self, connection_id: &str, message: &str) -> Posted {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(message.as_bytes()))
            .send()
            .await;
        match sent {
            Ok(_) => Posted::Delivered,
            Err(err) => {
                let gone = matches!(
                    err.as_service_error(),
                    Some(PostToConnectionError::GoneException(_))
                ) || err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 410);
                if gone {
                    Posted::Gone
                } else {
                    Posted::Failed(
                        aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err).to_string(),
                    )
                }
            }
        }
    }
}

/// Fans one committed event out. An event this function has nothing to push for (another
/// source or type, which the rule does not send) is logged and answered with nothing done.
/// `Err` only when the table cannot be read: Lambda then retries the event (at most twice,
/// within a minute: `EventInvokeConfig` in template.yaml), and clients drop a repeat by
/// `version`.
pub async fn handle(event: BusEvent, app: &App, poster: Arc<dyn Poster>) -> cafe::Result<FanOut> {
    let Some(domain_event) = event.domain_event() else {
        tracing::warn!(
            source = %event.source,
            detail_type = %event.detail_type,
            "not a cafe domain event; nothing to push"
        );
        return Ok(FanOut::default());
    };
    let result = fan_out(app, poster, std::slice::from_ref(&domain_event))
        .await
        .inspect_err(|error| {
            tracing::error!(%error, "live fan-out could not read the table; Lambda retries the event");
        })?;
    tracing::info!(
        event_id = %domain_event.event_id,
        event_type = domain_event.event_type.as_str(),
        delivered = result.delivered,
        gone = result.gone,
        failed = result.failed,
        "live fan-out"
    );
    Ok(result)
}

/// [`live::plan`], then the posts [`CONCURRENT_POSTS`] at a time.
pub async fn fan_out(
    app: &App,
    poster: Arc<dyn Poster>,
    events: &[DomainEvent],
) -> cafe::Result<FanOut> {
    let planned = live::plan(app, events).await?;
    let mut result = FanOut::default();
    for chunk in planned.chunks(CONCURRENT_POSTS) {
        let mut posts = tokio::task::JoinSet::new();
        for (connection_id, message) in chunk {
            let (poster, connection_id, message) =
                (poster.clone(), connection_id.clone(), message.clone());
            posts.spawn(async move {
                let posted = poster.post(&connection_id, &message).await;
                (connection_id, posted)
            });
        }
        while let Some(done) = posts.join_next().await {
            match done {
                Ok((connection_id, posted)) => {
                    live::record(app, &mut result, &connection_id, posted).await;
                }
                Err(error) => {
                    result.failed += 1;
                    tracing::error!(%error, "a post task failed");
                }
            }
        }
    }
    Ok(result)
}
