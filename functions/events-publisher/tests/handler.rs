//! The stream handler with in-memory and failing publishers: what it publishes from a batch and
//! which records it reports as failed.

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event;
use cafe::domain::{DomainEvent, EventType};
use cafe::events::{EventPublisher, MemoryEventLog};
use cafe::{Error, Result};
use serde_json::{Value, json};
use std::sync::Mutex;

fn sample() -> Event {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/events-publisher.json"
    );
    let text = std::fs::read_to_string(path).expect("sample event");
    serde_json::from_str(&text).expect("sample parses as a DynamoDB stream event")
}

fn event(n: usize) -> DomainEvent {
    DomainEvent::member(
        EventType::MemberRegistered,
        &format!("member-{n}"),
        "SERVICE",
        cafe::testing::epoch(),
    )
}

fn outbox_insert(seq: u64, e: &DomainEvent) -> Value {
    let pk = format!("OUTBOX#{}", e.event_id);
    json!({
        "eventID": format!("e{seq}"), "eventName": "INSERT", "awsRegion": "us-east-1",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": "EVENT"}},
            "NewImage": {"pk": {"S": pk}, "sk": {"S": "EVENT"},
                         "eventType": {"S": e.event_type.as_str()},
                         "event": {"S": serde_json::to_string(e).expect("json")},
                         "ttl": {"N": "1800000000"}},
            "SequenceNumber": seq.to_string(), "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn other_record(seq: u64, name: &str, pk: &str) -> Value {
    json!({
        "eventID": format!("e{seq}"), "eventName": name, "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": "PROFILE"}},
            "NewImage": {"pk": {"S": pk}, "sk": {"S": "PROFILE"}, "status": {"S": "SERVICE"}},
            "SequenceNumber": seq.to_string(), "SizeBytes": 100
        }
    })
}

fn batch(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).expect("stream event")
}

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

/// Refuses the events whose ids it was given; records every call.
#[derive(Default)]
struct Refusing {
    refuse: Vec<String>,
    calls: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl EventPublisher for Refusing {
    async fn publish(&self, events: &[DomainEvent]) -> Result<Vec<String>> {
        let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        self.calls.lock().expect("calls").push(ids.clone());
        Ok(ids
            .into_iter()
            .filter(|id| self.refuse.contains(id))
            .collect())
    }
}

struct Down;

#[async_trait]
impl EventPublisher for Down {
    async fn publish(&self, _events: &[DomainEvent]) -> Result<Vec<String>> {
        Err(Error::Unavailable("EventBridge"))
    }
}

#[tokio::test]
async fn the_sample_publishes_only_its_outbox_insert() {
    let log = MemoryEventLog::new();
    let response =
        events_publisher::handle(sample(), &log, &cafe::metrics::Metrics::disabled()).await;
    assert!(response.batch_item_failures.is_empty());
    let published = log.events();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event_type, EventType::MemberWithdrawn);
    assert_eq!(published[0].event_id, "01KFAX3M8Z6W1Q9P2R4T7V5Y0B");
    assert_eq!(
        published[0].detail["memberId"],
        "01KF9ZC2D4E6G8J0K2M4P6R8T0"
    );
    assert_eq!(published[0].detail["status"], "WITHDRAWN");
}

#[tokio::test]
async fn a_refused_event_fails_its_record_and_every_later_one() {
    let events: Vec<DomainEvent> = (0..3).map(event).collect();
    let publisher = Refusing {
        refuse: vec![events[1].event_id.clone()],
        ..Refusing::default()
    };
    let stream = batch(vec![
        outbox_insert(101, &events[0]),
        other_record(102, "MODIFY", "MEMBER#m"),
        outbox_insert(103, &events[1]),
        outbox_insert(104, &events[2]),
        other_record(105, "REMOVE", "ORDER#o"),
    ]);
    let (metrics, measured) = cafe::metrics::Metrics::recording();
    let response = events_publisher::handle(stream, &publisher, &metrics).await;
    assert_eq!(failures(&response), ["103", "104", "105"]);
    assert_eq!(measured.sum("EventsPublished", &[]), 2.0);
    assert_eq!(measured.sum("EventsFailed", &[]), 1.0);
    let calls = publisher.calls.into_inner().expect("calls");
    let all: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        calls,
        [all],
        "one publish call with the outbox events in stream order"
    );
}

#[tokio::test]
async fn an_undecodable_outbox_record_is_skipped_not_retried() {
    let good = event(1);
    let mut broken = outbox_insert(201, &event(2));
    broken["dynamodb"]["NewImage"]["event"] = json!({"S": "{not json"});
    let mut missing = outbox_insert(202, &event(3));
    missing["dynamodb"]["NewImage"]
        .as_object_mut()
        .expect("image")
        .remove("event");
    let log = MemoryEventLog::new();
    let stream = batch(vec![broken, missing, outbox_insert(203, &good)]);
    let response =
        events_publisher::handle(stream, &log, &cafe::metrics::Metrics::disabled()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(log.events(), [good]);
}

#[tokio::test]
async fn a_publisher_that_is_down_fails_from_the_first_outbox_record() {
    let stream = batch(vec![
        other_record(301, "MODIFY", "MEMBER#m"),
        outbox_insert(302, &event(1)),
        outbox_insert(303, &event(2)),
    ]);
    let (metrics, measured) = cafe::metrics::Metrics::recording();
    let response = events_publisher::handle(stream, &Down, &metrics).await;
    assert_eq!(failures(&response), ["302", "303"]);
    assert_eq!(measured.sum("EventsPublished", &[]), 0.0);
    assert_eq!(measured.sum("EventsFailed", &[]), 2.0);
}

#[tokio::test]
async fn a_batch_without_outbox_inserts_publishes_nothing() {
    let publisher = Refusing::default();
    let stream = batch(vec![
        other_record(401, "INSERT", "MEMBER#m"),
        other_record(402, "REMOVE", "OUTBOX#01KFAX3M8Z6W1Q9P2R4T7V5Y0B"),
    ]);
    let response =
        events_publisher::handle(stream, &publisher, &cafe::metrics::Metrics::disabled()).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(publisher.calls.into_inner().expect("calls").is_empty());
}

#[test]
fn the_response_serialises_as_lambda_expects() {
    let mut failure = aws_lambda_events::event::streams::DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some("103".into());
    let mut response = aws_lambda_events::event::streams::DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    let wire = serde_json::to_value(&response).expect("json");
    assert_eq!(
        wire,
        json!({"batchItemFailures": [{"itemIdentifier": "103"}]})
    );
}
