//! `live-sender`: fed by the table's DynamoDB Stream (outbox inserts only, like
//! `events-publisher`), pushes each committed order change to the WebSocket connections that
//! may hear it (`docs/live.md`), with API Gateway's `PostToConnection`. A connection that is
//! gone (410) is forgotten and the others still get theirs; a failed post is logged and
//! counted, never retried into a duplicate for everyone. Only a failure to read the table fails
//! the batch (from its first record), so Lambda retries it: a client drops the repeats by
//! `version`.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use cafe::App;
use cafe::domain::DomainEvent;
use cafe::services::live::{self, FanOut, Posted, Poster};
use serde_dynamo::AttributeValue;
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

fn outbox_event(record: &EventRecord) -> Option<DomainEvent> {
    if record.event_name != "INSERT" {
        return None;
    }
    let string = |name: &str| match record
        .change
        .keys
        .get(name)
        .or_else(|| record.change.new_image.get(name))
    {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    if !string("pk").is_some_and(|pk| pk.starts_with("OUTBOX#")) {
        return None;
    }
    match record.change.new_image.get("event") {
        Some(AttributeValue::S(raw)) => match serde_json::from_str(raw) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::error!(%error, "skipping an outbox record that cannot be decoded");
                None
            }
        },
        _ => None,
    }
}

/// Fans the batch's committed events out; the response names every record when the table
/// could not be read (Lambda retries the batch), none otherwise.
pub async fn handle(event: Event, app: &App, poster: Arc<dyn Poster>) -> DynamoDbEventResponse {
    let events: Vec<DomainEvent> = event.records.iter().filter_map(outbox_event).collect();
    let mut response = DynamoDbEventResponse::default();
    match fan_out(app, poster, &events).await {
        Ok(result) => tracing::info!(
            records = event.records.len(),
            delivered = result.delivered,
            gone = result.gone,
            failed = result.failed,
            "live fan-out"
        ),
        Err(error) => {
            tracing::error!(%error, "live fan-out could not read the table; retrying the batch");
            response.batch_item_failures = event
                .records
                .iter()
                .map(|record| {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = record.change.sequence_number.clone();
                    failure
                })
                .collect();
        }
    }
    response
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
