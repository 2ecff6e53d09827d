//! The live sender's EventBridge rule, as `template.yaml` writes it, on moto's EventBridge: the
//! publisher puts every kind of domain event on a bus, the rule (the template's own pattern)
//! sends its matches to a queue, and what arrives is exactly the events that change an order's
//! status, each of which reads back (`BusEvent::domain_event`) as the very event committed. So the
//! pattern, the publisher's envelope and the sender's reading of it agree.

mod moto;
mod template;

use cafe::domain::events::EVENT_SOURCE;
use cafe::domain::live::LIVE_EVENT_TYPES;
use cafe::domain::{DomainEvent, EventType};
use cafe::events::{EventBridgePublisher, EventPublisher};
use serde_json::{Value, json};
use std::time::Duration;

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
    let endpoint = cafe::testing::dynamodb_endpoint();
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let bus = format!("cafe-live-rule-{suffix}");
    moto::call(
        &endpoint,
        "events",
        "AWSEvents.CreateEventBus",
        json!({"Name": bus}),
    )
    .await;
    let queue = moto::bus_queue(
        &endpoint,
        &bus,
        "live-sender",
        &template_pattern(),
        &format!("cafe-live-rule-{suffix}"),
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

    // Waits for the five, then once more for anything else the rule let through.
    let mut arrived: Vec<DomainEvent> = moto::drain(&endpoint, &queue, LIVE_EVENT_TYPES.len())
        .await
        .into_iter()
        .map(|body| {
            // As the sender's runtime reads its invocation.
            let envelope: cafe::events::eventbridge::BusEvent =
                serde_json::from_value(body).expect("an EventBridge event");
            assert_eq!(envelope.source, EVENT_SOURCE);
            envelope
                .domain_event()
                .expect("the sender reads it as a domain event")
        })
        .collect();
    let mut expected: Vec<DomainEvent> = all
        .into_iter()
        .filter(|e| LIVE_EVENT_TYPES.contains(&e.event_type))
        .collect();
    expected.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    arrived.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(arrived, expected);
}
