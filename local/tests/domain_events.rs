//! The exact domain events of every flow on the embedded default: types, order and the key detail
//! fields, as committed by the store (the in-memory stand-in for the outbox and its publisher).

use cafe::clock::Clock;
use cafe::domain::{DomainEvent, EventType};
use cafe::services::expiry::{ExpiryOptions, run_expiry};
use cafe_local::testing::{PASSWORD, TestApp, request};
use chrono::Duration;
use serde_json::{Value, json};
use std::collections::HashSet;

const COFFEE: &str = "01JC0FFEE00000000000000C01";
const BEANS: &str = "01JC0FFEE00000000000000B02";

fn at(t: &TestApp) -> String {
    cafe::clock::rfc3339(t.clock.now())
}

/// Checks one event: its type, the listed detail fields, its time, and its stable id.
fn check(event: &DomainEvent, event_type: EventType, fields: &[(&str, Value)], when: &str) {
    assert_eq!(event.event_type, event_type, "{event:?}");
    for (name, value) in fields {
        assert_eq!(&event.detail[*name], value, "{name} of {event:?}");
    }
    assert_eq!(event.detail["at"], when, "{event:?}");
    assert_eq!(cafe::clock::rfc3339(event.occurred_at), when);
    assert!(cafe::ids::is_well_formed(&event.event_id));
}

fn distinct_ids(events: &[DomainEvent]) {
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
}

async fn log_in(t: &TestApp, email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD});
    let (status, answer) = t
        .call(request("POST", "/auth/login").json(&body).build())
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["result"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test]
async fn sign_up_withdraw_restore_then_withdraw_and_expire() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let signed_up_at = at(&t);
    let id = json!(me.member_id);

    t.clock.advance(Duration::minutes(10));
    let withdraw = format!("/member/{}/withdraw", me.member_id);
    let (status, body) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    let withdrawn_at = at(&t);

    t.clock.advance(Duration::days(3));
    let access = log_in(&t, &me.email).await;
    let restore = format!("/member/{}/restore", me.member_id);
    let (status, body) = t
        .call(request("POST", &restore).bearer(&access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    let restored_at = at(&t);

    t.clock.advance(Duration::days(1));
    let access = log_in(&t, &me.email).await;
    let (status, body) = t
        .call(request("DELETE", &withdraw).bearer(&access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    let withdrawn_again_at = at(&t);

    // Withdrawn 30 days ago by the job's clock: ended once, and a rerun adds nothing.
    t.clock.advance(Duration::days(30));
    for _ in 0..2 {
        run_expiry(
            t.app.store.clone(),
            t.clock.now(),
            &ExpiryOptions::default(),
        )
        .await
        .expect("expiry");
    }
    let expired_at = at(&t);

    let events = t.parts.events.events();
    assert_eq!(events.len(), 5, "{events:?}");
    let member = |status: &str| vec![("memberId", id.clone()), ("status", json!(status))];
    check(
        &events[0],
        EventType::MemberRegistered,
        &member("SERVICE"),
        &signed_up_at,
    );
    check(
        &events[1],
        EventType::MemberWithdrawn,
        &member("WITHDRAWN"),
        &withdrawn_at,
    );
    check(
        &events[2],
        EventType::MemberRestored,
        &member("SERVICE"),
        &restored_at,
    );
    check(
        &events[3],
        EventType::MemberWithdrawn,
        &member("WITHDRAWN"),
        &withdrawn_again_at,
    );
    check(
        &events[4],
        EventType::MemberExpired,
        &member("END"),
        &expired_at,
    );
    distinct_ids(&events);
}

struct Shop {
    t: TestApp,
    member_id: String,
    access: String,
}

impl Shop {
    async fn new() -> Self {
        let t = TestApp::new().await;
        let me = t.sign_up().await;
        t.parts.events.take();
        Self {
            member_id: me.member_id,
            access: me.access,
            t,
        }
    }

    /// 2 coffees (3,000) and 1 bag of beans (25,000) = 28,000.
    async fn order(&self) -> String {
        let body =
            json!({"items": [{"itemId": COFFEE, "quantity": 2}, {"itemId": BEANS, "quantity": 1}]});
        let (status, answer) = self
            .t
            .call(
                request("POST", "/order")
                    .bearer(&self.access)
                    .json(&body)
                    .build(),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["result"]["orderId"]
            .as_str()
            .expect("orderId")
            .to_owned()
    }

    /// Pays in parts; returns the payment ids in the order of the parts.
    async fn pay(&self, order_id: &str, parts: &[(i64, &str)]) -> Vec<String> {
        let payments: Vec<Value> = parts
            .iter()
            .map(|(amount, kind)| json!({"amount": amount, "type": kind}))
            .collect();
        let body = json!({"orderId": order_id, "payments": payments});
        let (status, answer) = self
            .t
            .call(
                request("POST", "/payment")
                    .bearer(&self.access)
                    .json(&body)
                    .build(),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["result"]["payments"]
            .as_array()
            .expect("payments")
            .iter()
            .map(|p| p["paymentId"].as_str().expect("paymentId").to_owned())
            .collect()
    }

    async fn cancel(&self, order_id: &str) {
        let path = format!("/order/{order_id}/cancel");
        let (status, answer) = self
            .t
            .call(request("DELETE", &path).bearer(&self.access).build())
            .await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn order_then_cancel_while_pending() {
    let shop = Shop::new().await;
    let order_id = shop.order().await;
    let ordered_at = at(&shop.t);
    shop.t.clock.advance(Duration::minutes(5));
    shop.cancel(&order_id).await;
    let cancelled_at = at(&shop.t);

    let events = shop.t.parts.events.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let order = |status: &str| {
        vec![
            ("orderId", json!(order_id)),
            ("memberId", json!(shop.member_id)),
            ("status", json!(status)),
            ("totalPrice", json!(28_000)),
        ]
    };
    check(
        &events[0],
        EventType::OrderCreated,
        &order("PENDING_PAYMENT"),
        &ordered_at,
    );
    check(
        &events[1],
        EventType::OrderCancelled,
        &order("CANCELLED"),
        &cancelled_at,
    );
    distinct_ids(&events);
}

#[tokio::test]
async fn order_pay_in_two_parts_then_cancel_the_paid_order() {
    let shop = Shop::new().await;
    let order_id = shop.order().await;
    let ordered_at = at(&shop.t);
    shop.t.clock.advance(Duration::minutes(1));
    let payments = shop
        .pay(&order_id, &[(20_000, "CARD"), (8_000, "POINT")])
        .await;
    let paid_at = at(&shop.t);
    assert_eq!(payments.len(), 2);
    shop.t.clock.advance(Duration::minutes(10));
    shop.cancel(&order_id).await;
    let cancelled_at = at(&shop.t);

    let events = shop.t.parts.events.events();
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::OrderCreated,
            EventType::PaymentCompleted,
            EventType::PaymentCompleted,
            EventType::OrderCancelled,
            EventType::PaymentRefunded,
            EventType::PaymentRefunded,
        ]
    );
    let order = |status: &str| {
        vec![
            ("orderId", json!(order_id)),
            ("memberId", json!(shop.member_id)),
            ("status", json!(status)),
            ("totalPrice", json!(28_000)),
        ]
    };
    let payment = |i: usize, amount: i64, kind: &str, status: &str| {
        vec![
            ("orderId", json!(order_id)),
            ("paymentId", json!(payments[i])),
            ("amount", json!(amount)),
            ("type", json!(kind)),
            ("status", json!(status)),
        ]
    };
    check(
        &events[0],
        EventType::OrderCreated,
        &order("PENDING_PAYMENT"),
        &ordered_at,
    );
    check(
        &events[1],
        EventType::PaymentCompleted,
        &payment(0, 20_000, "CARD", "PAID"),
        &paid_at,
    );
    check(
        &events[2],
        EventType::PaymentCompleted,
        &payment(1, 8_000, "POINT", "PAID"),
        &paid_at,
    );
    check(
        &events[3],
        EventType::OrderCancelled,
        &order("CANCELLED"),
        &cancelled_at,
    );
    check(
        &events[4],
        EventType::PaymentRefunded,
        &payment(0, 20_000, "CARD", "CANCELED"),
        &cancelled_at,
    );
    check(
        &events[5],
        EventType::PaymentRefunded,
        &payment(1, 8_000, "POINT", "CANCELED"),
        &cancelled_at,
    );
    for paid in &events[1..3] {
        assert!(
            paid.detail["pgTransactionId"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }
    distinct_ids(&events);
}

#[tokio::test]
async fn refused_changes_announce_nothing() {
    let shop = Shop::new().await;
    let order_id = shop.order().await;
    shop.t.parts.events.take();
    // Wrong total, then a double cancel: no event for either.
    let body = json!({"orderId": order_id, "payments": [{"amount": 1, "type": "CARD"}]});
    let (status, _) = shop
        .t
        .call(
            request("POST", "/payment")
                .bearer(&shop.access)
                .json(&body)
                .build(),
        )
        .await;
    assert_eq!(status, 400);
    shop.cancel(&order_id).await;
    let path = format!("/order/{order_id}/cancel");
    let (status, _) = shop
        .t
        .call(request("DELETE", &path).bearer(&shop.access).build())
        .await;
    assert_eq!(status, 400);
    assert_eq!(shop.t.parts.events.types(), [EventType::OrderCancelled]);
}
