//! The live sender's EventBridge rule, as `template.yaml` writes it, on moto's EventBridge: the
//! publisher puts every kind of domain event on a bus, the rule (the template's own pattern)
//! sends its matches to a queue, and what arrives is exactly the events that change an order's
//! status, each of which reads back (`domain_event`) as the very event committed. So the
//! pattern, the publisher's envelope and the sender's reading of it agree.

mod template;

use cafe::domain::events::EVENT_SOURCE;
use cafe::domain::live::LIVE_EVENT_TYPES;
use cafe::domain::{DomainEvent, EventType};
use cafe::events::{EventBridgePublisher, EventPublisher};
use serde_json::{Value, json};
use std::time::Duration;

/// Calls a JSON-protocol API on moto (the credential scope names the service).
async fn call(service: &str, target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(cafe::testing::dynamodb_endpoint())
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The template's pattern for the live sender's rule, as JSON.
fn template_pattern() -> Value {
    let template = template::template();
    let pattern = template::get(
        &template,
        &[
            "Resources",
            "LiveSenderFunction",
            "Properties",
            "Events",
            "OrderStatus",
            "Properties",
            "Pattern",
        ],
    )
    .expect("LiveSenderFunction's OrderStatus rule has a Pattern")
    .clone();
    serde_json::to_value(pattern).expect("the pattern as JSON")
}

#[tokio::test]
async fn the_template_rule_brings_the_sender_exactly_the_order_status_events() {
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let bus = format!("cafe-live-rule-{suffix}");
    let queue = call(
        "sqs",
        "AmazonSQS.CreateQueue",
        json!({"QueueName": format!("cafe-live-rule-{suffix}")}),
    )
    .await["QueueUrl"]
        .as_str()
        .expect("queue url")
        .to_owned();
    let queue_arn = call(
        "sqs",
        "AmazonSQS.GetQueueAttributes",
        json!({"QueueUrl": queue, "AttributeNames": ["QueueArn"]}),
    )
    .await["Attributes"]["QueueArn"]
        .as_str()
        .expect("queue arn")
        .to_owned();
    call("events", "AWSEvents.CreateEventBus", json!({"Name": bus})).await;
    call(
        "events",
        "AWSEvents.PutRule",
        json!({"Name": "live-sender", "EventBusName": bus,
               "EventPattern": template_pattern().to_string()}),
    )
    .await;
    call(
        "events",
        "AWSEvents.PutTargets",
        json!({"Rule": "live-sender", "EventBusName": bus,
               "Targets": [{"Id": "queue", "Arn": queue_arn}]}),
    )
    .await;

    // One of every kind the cafe commits, order status changes among them.
    let at = cafe::testing::epoch() + chrono::Duration::milliseconds(345);
    let item = cafe::domain::item::seed_items().remove(0);
    let payment = cafe::domain::Payment {
        payment_id: "01KFAX3M8Z6W1Q9P2R4T7V5Y1P".into(),
        payment_type: cafe::domain::PaymentType::Card,
        amount: 1_500,
        status: cafe::domain::PaymentStatus::Paid,
        pg_transaction_id: "pg_01".into(),
    };
    let order = |kind, status| DomainEvent::order(kind, "o1", "m1", status, 1_500, at);
    let all = vec![
        DomainEvent::member(EventType::MemberRegistered, "m1", "SERVICE", at),
        order(EventType::OrderCreated, "PENDING_PAYMENT"),
        DomainEvent::payment(EventType::PaymentCompleted, "o1", &payment, at),
        order(EventType::OrderFulfilmentAdvanced, "READY"),
        DomainEvent::payment(EventType::PaymentRefunded, "o1", &payment, at),
        order(EventType::OrderCancelled, "CANCELLED"),
        order(EventType::OrderExpired, "EXPIRED"),
        DomainEvent::shop(false, Some("back at 3"), "s1", at),
        DomainEvent::item(EventType::ItemStockChanged, &item, "s1", None, at),
        DomainEvent::role("m1", "STAFF", "a1", at),
    ];
    let aws = cafe::aws::Aws::load(
        Some(&cafe::testing::dynamodb_endpoint()),
        Duration::from_secs(10),
    )
    .await;
    EventBridgePublisher::from_aws(&aws, &bus)
        .publish(&all)
        .await
        .expect("published");

    let mut arrived: Vec<DomainEvent> = Vec::new();
    for _ in 0..30 {
        let answer = call(
            "sqs",
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 300}),
        )
        .await;
        for message in answer["Messages"].as_array().cloned().unwrap_or_default() {
            let body = message["Body"].as_str().expect("message body");
            // As the sender's runtime reads its invocation.
            let envelope: cafe::events::eventbridge::BusEvent =
                serde_json::from_str(body).expect("an EventBridge event");
            assert_eq!(envelope.source, EVENT_SOURCE);
            let event = envelope
                .domain_event()
                .expect("the sender reads it as a domain event");
            arrived.push(event);
        }
        if arrived.len() >= LIVE_EVENT_TYPES.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing else straggles in after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = call(
        "sqs",
        "AmazonSQS.ReceiveMessage",
        json!({"QueueUrl": queue, "MaxNumberOfMessages": 10}),
    )
    .await;
    assert!(
        late["Messages"].as_array().is_none_or(Vec::is_empty),
        "{late}"
    );

    let mut expected: Vec<DomainEvent> = all
        .into_iter()
        .filter(|e| LIVE_EVENT_TYPES.contains(&e.event_type))
        .collect();
    expected.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    arrived.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(arrived, expected);
}
