//! The cafe floor over the handlers (`docs/floor.md`): pickup numbers in every answer that
//! shows a paid order and in its events, reset at the shop's local midnight; `GET /shop` and
//! `PUT /admin/shop` with their refusals; a closed shop refusing orders and payments with
//! 409SH000 before any charge; the capacity refusals with `Retry-After`; the payment window.

use cafe::domain::{EventType, Role};
use cafe_local::testing::{SignedUp, TestApp, assert_failure, request};
use serde_json::{Value, json};

const COLA: &str = "01JC0FFEE00000000000000C01";
const PRICE: i64 = 1_500;

async fn ok(t: &TestApp, req: lambda_http::Request, status: u16) -> Value {
    let (got, body) = t.call(req).await;
    assert_eq!(got, status, "{body}");
    body["result"].clone()
}

async fn order(t: &TestApp, member: &SignedUp) -> String {
    let placed = ok(
        t,
        request("POST", "/order")
            .bearer(&member.access)
            .json(&json!({"items": [{"itemId": COLA, "quantity": 1}]}))
            .build(),
        201,
    )
    .await;
    placed["orderId"].as_str().unwrap_or_default().to_owned()
}

fn payment(member: &SignedUp, order_id: &str) -> lambda_http::Request {
    request("POST", "/payment")
        .bearer(&member.access)
        .json(&json!({"orderId": order_id, "payments": [{"amount": PRICE, "type": "CARD"}]}))
        .build()
}

fn floor(max_in_progress: i64, max_open_per_member: i64) -> cafe::config::Config {
    let mut config = cafe::testing::test_config();
    config.floor.max_in_progress = max_in_progress;
    config.floor.max_open_per_member = max_open_per_member;
    config
}

#[tokio::test]
async fn pickup_numbers_are_everywhere_and_start_again_at_local_midnight() {
    let t = TestApp::new().await;
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    let customer = t.sign_up().await;
    let first = order(&t, &customer).await;
    // Ids made in one millisecond do not sort in creation order.
    t.clock.advance(chrono::Duration::seconds(1));
    let second = order(&t, &customer).await;
    let paid = ok(&t, payment(&customer, &first), 200).await;
    assert_eq!(paid["pickupNumber"], 1, "{paid}");
    let paid = ok(&t, payment(&customer, &second), 200).await;
    assert_eq!(paid["pickupNumber"], 2, "{paid}");

    let detail = ok(
        &t,
        request("GET", &format!("/order/{second}"))
            .bearer(&customer.access)
            .build(),
        200,
    )
    .await;
    assert_eq!(detail["pickupNumber"], 2, "{detail}");
    // One order ahead of it; no order made yet today, so 180 s each: 6 minutes, to the minute.
    assert_eq!(detail["wait"]["ordersAhead"], 1, "{detail}");
    assert_eq!(detail["wait"]["estimatedWaitMinutes"], 6, "{detail}");
    assert_eq!(
        detail["wait"]["estimatedReadyAt"],
        "2026-01-15T09:06:00.000Z"
    );
    let list = ok(
        &t,
        request("GET", "/orders").bearer(&customer.access).build(),
        200,
    )
    .await;
    let numbers: Vec<&Value> = list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| &o["pickupNumber"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)], "{list}");
    let queue = ok(
        &t,
        request("GET", "/admin/orders")
            .bearer(&clerk.access)
            .build(),
        200,
    )
    .await;
    assert_eq!(queue["orders"][0]["pickupNumber"], 1, "{queue}");
    let events = t.parts.events.events();
    let completed: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == EventType::PaymentCompleted)
        .map(|e| &e.detail["pickupNumber"])
        .collect();
    assert_eq!(completed, [&json!(1), &json!(2)]);

    // The test clock starts at 09:00 UTC = 18:00 in Seoul; 15:00 UTC is Seoul's midnight.
    t.clock.advance(chrono::Duration::hours(6));
    let customer = SignedUp {
        access: cafe_local::testing::log_in(&t.app, &customer.email).await,
        ..customer
    };
    let third = order(&t, &customer).await;
    let paid = ok(&t, payment(&customer, &third), 200).await;
    assert_eq!(paid["pickupNumber"], 1, "a new business day: {paid}");
}

#[tokio::test]
async fn staff_open_and_close_the_shop_and_a_closed_shop_takes_nothing() {
    let t = TestApp::with_config(floor(20, 3)).await;
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    let customer = t.sign_up().await;
    let pending = order(&t, &customer).await;

    let shop = ok(&t, request("GET", "/shop").build(), 200).await;
    assert_eq!(shop["open"], true);
    assert_eq!(shop["ordersInProgress"], 0);
    assert_eq!(shop["room"], 20);
    assert_eq!(shop["estimatedWaitMinutes"], 3, "{shop}");

    let close = |access: &str, body: Value| {
        request("PUT", "/admin/shop")
            .bearer(access)
            .json(&body)
            .build()
    };
    // Customers may not; bodies are checked.
    let (status, body) = t
        .call(close(&customer.access, json!({"open": false})))
        .await;
    assert_failure(status, &body, "403CO000");
    let (status, body) = t
        .call(
            request("PUT", "/admin/shop")
                .json(&json!({"open": false}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "401CO000");
    for bad in [
        json!({}),
        json!({"open": "no"}),
        json!({"open": false, "message": "x".repeat(201)}),
        json!({"open": false, "message": "a\u{0007}b"}),
        json!({"open": false, "extra": 1}),
    ] {
        let (status, body) = t.call(close(&clerk.access, bad.clone())).await;
        assert_failure(status, &body, "400CO000");
    }

    let closed = ok(
        &t,
        close(
            &clerk.access,
            json!({"open": false, "message": "Back at 2pm"}),
        ),
        200,
    )
    .await;
    assert_eq!(closed["open"], false);
    assert_eq!(closed["message"], "Back at 2pm");
    let (status, body) = t.call(payment(&customer, &pending)).await;
    assert_failure(status, &body, "409SH000");
    assert!(
        body["error"]["detailMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Back at 2pm")),
        "{body}"
    );
    let (status, body) = t
        .call(
            request("POST", "/order")
                .bearer(&customer.access)
                .json(&json!({"items": [{"itemId": COLA, "quantity": 1}]}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "409SH000");
    assert!(t.parts.gateway.ledger().charges.is_empty());
    let seen = ok(&t, request("GET", "/shop").build(), 200).await;
    assert_eq!(seen["open"], false);

    ok(&t, close(&clerk.access, json!({"open": true})), 200).await;
    ok(&t, payment(&customer, &pending), 200).await;
    let kinds = t
        .parts
        .events
        .events()
        .iter()
        .filter(|e| e.event_type == EventType::ShopStatusChanged)
        .count();
    assert_eq!(kinds, 2);
}

#[tokio::test]
async fn past_capacity_payment_is_refused_with_retry_after_and_nothing_charged() {
    let t = TestApp::with_config(floor(1, 3)).await;
    let first = t.sign_up().await;
    let second = t.sign_up().await;
    let a = order(&t, &first).await;
    let b = order(&t, &second).await;
    ok(&t, payment(&first, &a), 200).await;
    let response = cafe_local::dispatch("payment-create", payment(&second, &b), &t.app).await;
    assert_eq!(response.status().as_u16(), 409);
    assert!(response.headers().get("retry-after").is_some());
    let body = cafe_local::testing::json_of(&response);
    assert_failure(409, &body, "409SH001");
    assert_eq!(t.parts.gateway.ledger().charges.len(), 1);
    let shop = ok(&t, request("GET", "/shop").build(), 200).await;
    assert_eq!(
        (shop["ordersInProgress"].clone(), shop["room"].clone()),
        (json!(1), json!(0))
    );

    // Under an Idempotency-Key the refusal is not kept: once the first order is made, the same
    // request with the same key really runs and pays.
    let keyed = |member: &SignedUp, order_id: &str| {
        request("POST", "/payment")
            .bearer(&member.access)
            .header("idempotency-key", "floor-retry-1")
            .json(&json!({"orderId": order_id, "payments": [{"amount": PRICE, "type": "CARD"}]}))
            .build()
    };
    let (status, body) = t.call(keyed(&second, &b)).await;
    assert_failure(status, &body, "409SH001");
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    for step in ["PREPARING", "READY"] {
        ok(
            &t,
            request("PUT", &format!("/admin/orders/{a}/status"))
                .bearer(&clerk.access)
                .json(&json!({"status": step}))
                .build(),
            200,
        )
        .await;
    }
    let paid = ok(&t, keyed(&second, &b), 200).await;
    assert_eq!(paid["pickupNumber"], 2, "{paid}");
    assert_eq!(t.parts.gateway.ledger().charges.len(), 2);
}

#[tokio::test]
async fn an_order_older_than_the_payment_window_cannot_be_paid() {
    let t = TestApp::new().await;
    let customer = t.sign_up().await;
    let pending = order(&t, &customer).await;
    t.clock.advance(chrono::Duration::minutes(16));
    let (status, body) = t.call(payment(&customer, &pending)).await;
    assert_failure(status, &body, "400OR003");
    assert!(t.parts.gateway.ledger().charges.is_empty());

    // The scheduled sweep (its sample event, run at the test clock) moves it to EXPIRED.
    let sweep = expire_orders::handle(json!({}), None, &t.app)
        .await
        .expect("sweep");
    assert_eq!((sweep.expired, sweep.complete), (1, true));
    let detail = ok(
        &t,
        request("GET", &format!("/order/{pending}"))
            .bearer(&customer.access)
            .build(),
        200,
    )
    .await;
    assert_eq!(detail["status"], "EXPIRED", "{detail}");
    let statuses: Vec<&Value> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| &h["status"])
        .collect();
    assert_eq!(statuses, [&json!("PENDING_PAYMENT"), &json!("EXPIRED")]);
    let expired_events = t
        .parts
        .events
        .events()
        .iter()
        .filter(|e| e.event_type == EventType::OrderExpired)
        .count();
    assert_eq!(expired_events, 1);
    let (status, body) = t.call(payment(&customer, &pending)).await;
    assert_failure(status, &body, "400OR003");
    let (status, body) = t
        .call(
            request("DELETE", &format!("/order/{pending}/cancel"))
                .bearer(&customer.access)
                .build(),
        )
        .await;
    assert_failure(status, &body, "400OR001");
}
