//! `events-publisher`: fed by the table's DynamoDB Stream, publishes the outbox records (items
//! `OUTBOX#<eventId>` / `EVENT`, written in the same transaction as the change they announce) to
//! EventBridge, and reports partial batch failures so Lambda retries from the first failed record.
//!
//! Delivery is at least once: a retried batch may publish an event again, and every event carries
//! its stable `eventId` so consumers drop duplicates.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cafe::domain::DomainEvent;
use cafe::events::EventPublisher;
use cafe::metrics::Metrics;
use serde_dynamo::AttributeValue;

/// Prefix of the outbox items' partition key.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

/// What to do with one stream record.
enum Decoded {
    /// Not an outbox insert (another item, a MODIFY, a TTL REMOVE): nothing to publish.
    Ignored,
    /// An outbox insert whose event could not be read: logged and skipped, because retrying
    /// would fail the same way and block the shard.
    Undecodable,
    Publish(DomainEvent),
}

fn string_attr<'a>(image: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
    match image.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn decode(record: &EventRecord) -> Decoded {
    if record.event_name != "INSERT" {
        return Decoded::Ignored;
    }
    let image = &record.change.new_image;
    let keys = &record.change.keys;
    let pk = string_attr(keys, "pk").or_else(|| string_attr(image, "pk"));
    if !pk.is_some_and(|pk| pk.starts_with(OUTBOX_PREFIX)) {
        return Decoded::Ignored;
    }
    let decoded = string_attr(image, "event")
        .ok_or_else(|| "no `event` string attribute".to_owned())
        .and_then(|raw| serde_json::from_str::<DomainEvent>(raw).map_err(|e| e.to_string()));
    match decoded {
        Ok(event) => Decoded::Publish(event),
        Err(reason) => {
            tracing::error!(
                stream_event_id = %record.event_id,
                sequence_number = ?record.change.sequence_number,
                %reason,
                "skipping an outbox record that cannot be decoded"
            );
            Decoded::Undecodable
        }
    }
}

/// Publishes the batch's outbox events; the response names, in stream order, every record from
/// the first one whose event could not be published onward (Lambda resumes from the lowest).
pub async fn handle(
    event: Event,
    publisher: &dyn EventPublisher,
    metrics: &Metrics,
) -> DynamoDbEventResponse {
    let mut to_publish: Vec<(usize, DomainEvent)> = Vec::new();
    let mut skipped = 0usize;
    for (index, record) in event.records.iter().enumerate() {
        match decode(record) {
            Decoded::Ignored => {}
            Decoded::Undecodable => skipped += 1,
            Decoded::Publish(domain_event) => to_publish.push((index, domain_event)),
        }
    }
    let events: Vec<DomainEvent> = to_publish.iter().map(|(_, e)| e.clone()).collect();
    let mut failed_count = 0usize;
    let first_failed: Option<usize> = if events.is_empty() {
        None
    } else {
        match publisher.publish(&events).await {
            Ok(failed_ids) => {
                failed_count = failed_ids.len();
                to_publish
                    .iter()
                    .find(|(_, e)| failed_ids.contains(&e.event_id))
                    .map(|(index, _)| *index)
            }
            Err(e) => {
                tracing::error!(error = %e, "publishing the batch failed");
                failed_count = events.len();
                to_publish.first().map(|(index, _)| *index)
            }
        }
    };
    let mut response = DynamoDbEventResponse::default();
    if let Some(first) = first_failed {
        response.batch_item_failures = event.records[first..]
            .iter()
            .map(|record| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                failure
            })
            .collect();
    }
    metrics.events_published(
        (events.len().saturating_sub(failed_count)) as u64,
        failed_count as u64,
    );
    tracing::info!(
        records = event.records.len(),
        published = events.len().saturating_sub(failed_count),
        undecodable = skipped,
        failed_from = ?first_failed,
        "stream batch processed"
    );
    response
}
