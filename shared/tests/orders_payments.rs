//! Every contract answer of the order and payment endpoints, at the service level, with the
//! stored state checked behind each one.

mod order_support;

use cafe::Error;
use cafe::domain::{EventType, OrderStatus, PaymentStatus, PaymentType};
use cafe::events::MemoryEventLog;
use cafe::http::parse_body;
use cafe::services::orders::{self, CreateOrderRequest, ListQuery};
use cafe::services::payments::{self, PaymentAnswer, PaymentRequest};
use cafe::services::reconcile::{ReconcileOptions, run_reconcile};
use cafe::store::MemoryStore;
use order_support::*;
use std::sync::Arc;

fn setup() -> (Arc<Harness>, Arc<MemoryEventLog>) {
    let log = Arc::new(MemoryEventLog::new());
    let store = Arc::new(MemoryStore::with_event_log(log.clone()));
    let h = harness(store, local_lock(lock_config(10_000, 500)), quick_gateway());
    (h, log)
}

fn request_with(body: &str) -> lambda_http::Request {
    lambda_http::Request::from(
        http::Request::builder()
            .body(lambda_http::Body::Text(body.to_owned()))
            .expect("request"),
    )
}

fn parse_order(body: &str) -> cafe::Result<CreateOrderRequest> {
    parse_body(&request_with(body))
}

fn parse_payment(body: &str) -> cafe::Result<PaymentRequest> {
    parse_body(&request_with(body))
}

#[tokio::test]
async fn create_order_copies_prices_totals_and_records_the_event() {
    let (h, log) = setup();
    let member = h.member().await;
    let (cola, book) = (h.item(1_500, 10).await, h.item(25_000, 2).await);
    let request = parse_order(&format!(
        r#"{{"items":[{{"itemId":"{}","quantity":2}},{{"itemId":"{}","quantity":1}}]}}"#,
        cola.item_id, book.item_id
    ))
    .expect("valid body");
    let order = orders::create_order(&h.app, &member.member_id, &request)
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.total_price, 28_000);
    assert_eq!(order.items[0].unit_price, 1_500);
    assert_eq!(order.items[1].name, "Test item");
    let wire = serde_json::to_value(&order).expect("json");
    assert_eq!(wire["status"], "PENDING_PAYMENT");
    assert!(wire.get("payments").is_none());
    assert!(
        wire["createdAt"]
            .as_str()
            .expect("createdAt")
            .ends_with('Z')
    );
    assert_eq!(wire["items"][0]["unitPrice"], 1_500);
    // Stock is only checked at order time.
    assert_eq!(h.stock(&cola.item_id).await, 10);
    assert_eq!(
        log.types(),
        vec![EventType::MemberRegistered, EventType::OrderCreated]
    );
    let stored = h
        .app
        .store
        .get_order(&order.order_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.member_id, member.member_id);
    assert_eq!(stored.total_price, 28_000);
}

#[tokio::test]
async fn create_order_body_rules_name_the_field() {
    let line = |q: &str| format!(r#"{{"itemId":"i","quantity":{q}}}"#);
    let cases = [
        (r#"{"items":[]}"#.to_owned(), "items"),
        (
            format!(r#"{{"items":[{}]}}"#, line("0")),
            "items[0].quantity",
        ),
        (
            format!(r#"{{"items":[{}]}}"#, line("101")),
            "items[0].quantity",
        ),
        (
            format!(r#"{{"items":[{}]}}"#, line("\"2\"")),
            "items[0].quantity",
        ),
        (
            format!(r#"{{"items":[{},{}]}}"#, line("1"), line("2")),
            "items[1].itemId",
        ),
        (
            r#"{"items":[{"itemId":"i"}]}"#.to_owned(),
            "items[0].quantity",
        ),
        (
            r#"{"items":[{"itemId":"i","quantity":1}],"memberId":"x"}"#.to_owned(),
            "memberId",
        ),
        (r#"{}"#.to_owned(), "items"),
        ("[]".to_owned(), "body"),
    ];
    for (body, field) in cases {
        assert_eq!(parse_order(&body), Err(Error::invalid(field)), "{body}");
    }
    let many: Vec<String> = (0..21)
        .map(|i| format!(r#"{{"itemId":"i{i}","quantity":1}}"#))
        .collect();
    assert_eq!(
        parse_order(&format!(r#"{{"items":[{}]}}"#, many.join(","))),
        Err(Error::invalid("items"))
    );
}

#[tokio::test]
async fn create_order_refuses_unknown_items_short_stock_and_members_not_in_service() {
    let (h, _) = setup();
    let member = h.member().await;
    let item = h.item(1_000, 3).await;
    let request = |item_id: &str, quantity| CreateOrderRequest {
        items: vec![orders::LineRequest {
            item_id: item_id.to_owned(),
            quantity,
        }],
    };
    assert_eq!(
        orders::create_order(
            &h.app,
            &member.member_id,
            &request("01JC0FFEE0000000000000NONE", 1)
        )
        .await,
        Err(Error::NotFound("item"))
    );
    assert_eq!(
        orders::create_order(&h.app, &member.member_id, &request(&item.item_id, 4)).await,
        Err(Error::OutOfStock(item.item_id.clone()))
    );
    let withdrawn = h.withdrawn_member().await;
    assert_eq!(
        orders::create_order(&h.app, &withdrawn.member_id, &request(&item.item_id, 1)).await,
        Err(Error::Forbidden)
    );
    let page = orders::list_orders(&h.app, &member, &ListQuery::parse(None, None).expect("q"))
        .await
        .expect("list");
    assert!(page.orders.is_empty(), "a refused order was stored");
}

#[tokio::test]
async fn get_order_shows_payments_and_history_to_its_owner_only() {
    let (h, _) = setup();
    let (owner, stranger) = (h.member().await, h.member().await);
    let item = h.item(3_000, 5).await;
    let (order_id, total) = h.order(&owner, &[(&item.item_id, 1)]).await;
    payments::pay(&h.app, &owner.member_id, &card(&order_id, total))
        .await
        .expect("paid");

    let detail = orders::get_order(&h.app, &owner, &order_id)
        .await
        .expect("detail");
    assert_eq!(detail.status, OrderStatus::Completed);
    assert_eq!(detail.payments.len(), 1);
    let statuses: Vec<_> = detail.history.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["PENDING_PAYMENT", "COMPLETED"]);
    let wire = serde_json::to_value(&detail).expect("json");
    assert_eq!(wire["payments"][0]["type"], "CARD");
    assert_eq!(wire["payments"][0]["status"], "PAID");
    assert!(wire["payments"][0]["pgTransactionId"].is_string());
    assert!(wire["history"][0]["at"].is_string());
    assert!(wire.get("memberId").is_none());

    assert_eq!(
        orders::get_order(&h.app, &stranger, &order_id).await,
        Err(Error::Forbidden)
    );
    assert_eq!(
        orders::get_order(&h.app, &owner, "01KF0Q7W3N5X8R2T4V6Y9ZA1BC").await,
        Err(Error::NotFound("order"))
    );
    assert_eq!(
        orders::get_order(&h.app, &owner, "not-an-id").await,
        Err(Error::NotFound("order"))
    );
}

#[tokio::test]
async fn list_orders_pages_newest_first_and_refuses_tampered_cursors() {
    let (h, _) = setup();
    let (member, other) = (h.member().await, h.member().await);
    let item = h.item(1_000, 50).await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(h.order(&member, &[(&item.item_id, 1)]).await.0);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    h.order(&other, &[(&item.item_id, 1)]).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = ListQuery::parse(Some("2"), cursor.as_deref()).expect("query");
        let page = orders::list_orders(&h.app, &member, &query)
            .await
            .expect("page");
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.iter().map(|o| o.order_id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    placed.reverse();
    assert_eq!(
        seen, placed,
        "newest first, every order once, none of another member's"
    );

    let first = orders::list_orders(
        &h.app,
        &member,
        &ListQuery::parse(Some("2"), None).expect("q"),
    )
    .await
    .expect("page");
    let wire = serde_json::to_value(&first).expect("json");
    assert!(wire["nextCursor"].is_string());
    let mut tampered = first.next_cursor.expect("cursor");
    tampered.insert(3, '!');
    let query = ListQuery::parse(None, Some(&tampered)).expect("query");
    assert_eq!(
        orders::list_orders(&h.app, &member, &query).await,
        Err(Error::invalid("cursor"))
    );
    assert_eq!(
        ListQuery::parse(Some("0"), None),
        Err(Error::invalid("limit"))
    );
    assert_eq!(
        ListQuery::parse(Some("abc"), None),
        Err(Error::invalid("limit"))
    );
}

#[tokio::test]
async fn payment_body_rules_name_the_field() {
    let cases = [
        (
            r#"{"orderId":"o","payments":[{"amount":1,"type":"BITCOIN"}]}"#,
            "payments[0].type",
        ),
        (
            r#"{"orderId":"o","payments":[{"amount":0,"type":"CARD"}]}"#,
            "payments[0].amount",
        ),
        (
            r#"{"orderId":"o","payments":[{"amount":1.5,"type":"CARD"}]}"#,
            "payments[0].amount",
        ),
        (r#"{"orderId":"o","payments":[]}"#, "payments"),
        (r#"{"payments":[{"amount":1,"type":"CARD"}]}"#, "orderId"),
        (
            r#"{"orderId":"","payments":[{"amount":1,"type":"CARD"}]}"#,
            "orderId",
        ),
        (
            r#"{"orderId":"o","payments":[{"amount":1,"type":"CARD","x":1}]}"#,
            "payments[0].x",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(parse_payment(body), Err(Error::invalid(field)), "{body}");
    }
    let six = [r#"{"amount":1,"type":"CARD"}"#; 6].join(",");
    assert_eq!(
        parse_payment(&format!(r#"{{"orderId":"o","payments":[{six}]}}"#)),
        Err(Error::invalid("payments"))
    );
}

#[tokio::test]
async fn paying_takes_stock_stores_payments_and_history_and_records_events() {
    let (h, log) = setup();
    let member = h.member().await;
    let item = h.item(5_000, 4).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 3)]).await;
    let receipt = payments::pay(
        &h.app,
        &member.member_id,
        &parts(
            &order_id,
            &[(10_000, PaymentType::Card), (5_000, PaymentType::KakaoPay)],
        ),
    )
    .await
    .expect("paid");
    assert_eq!(total, 15_000);
    assert_eq!(receipt.status, OrderStatus::Completed);
    assert_eq!(receipt.payments.len(), 2);
    assert!(
        receipt
            .payments
            .iter()
            .all(|p| p.status == PaymentStatus::Paid)
    );
    let wire = serde_json::to_value(&receipt).expect("json");
    assert_eq!(wire["payments"][1]["type"], "KAKAO_PAY");
    assert_eq!(wire["orderId"], order_id.as_str());
    assert_eq!(h.stock(&item.item_id).await, 1);
    let stored = h
        .app
        .store
        .get_order(&order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(stored.payments, receipt.payments);
    let completed = log
        .events()
        .into_iter()
        .filter(|e| e.event_type == EventType::PaymentCompleted)
        .count();
    assert_eq!(completed, 2, "one PaymentCompleted per payment");
    assert_eq!(h.gateway.counts(&order_id), (2, 0, 2));
}

#[tokio::test]
async fn payment_refusals_charge_nothing() {
    let (h, _) = setup();
    let (member, stranger) = (h.member().await, h.member().await);
    let item = h.item(1_000, 5).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;

    let withdrawn = h.withdrawn_member().await;
    assert_eq!(
        payments::pay(&h.app, &withdrawn.member_id, &card(&order_id, total)).await,
        Err(Error::Forbidden)
    );
    assert_eq!(
        payments::pay(&h.app, &stranger.member_id, &card(&order_id, total)).await,
        Err(Error::Forbidden)
    );
    assert_eq!(
        payments::pay(
            &h.app,
            &member.member_id,
            &card("01KF0Q7W3N5X8R2T4V6Y9ZA1BC", total)
        )
        .await,
        Err(Error::NotFound("order"))
    );
    assert_eq!(
        payments::pay(&h.app, &member.member_id, &card(&order_id, total - 1)).await,
        Err(Error::PaymentMismatch)
    );
    // Stock sold elsewhere after the order was placed: refused before any charge.
    h.set_stock(&item, 1).await;
    assert_eq!(
        payments::pay(&h.app, &member.member_id, &card(&order_id, total)).await,
        Err(Error::OutOfStock(item.item_id.clone()))
    );
    assert_eq!(h.gateway.ledger().charges.len(), 0);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::PendingPayment);

    h.set_stock(&item, 5).await;
    payments::pay(&h.app, &member.member_id, &card(&order_id, total))
        .await
        .expect("paid");
    assert_eq!(
        payments::pay(&h.app, &member.member_id, &card(&order_id, total)).await,
        Err(Error::OrderStatusConflict)
    );
    let (cancel_id, cancel_total) = h.order(&member, &[(&item.item_id, 1)]).await;
    orders::cancel_order(&h.app, &member, &cancel_id)
        .await
        .expect("cancelled");
    assert_eq!(
        payments::pay(&h.app, &member.member_id, &card(&cancel_id, cancel_total)).await,
        Err(Error::OrderStatusConflict)
    );
    assert_eq!(h.gateway.ledger().charges.len(), 1);
    assert_eq!(h.stock(&item.item_id).await, 3);
}

#[tokio::test]
async fn a_failed_charge_refunds_the_parts_already_charged_and_changes_nothing() {
    let (h, log) = setup();
    let member = h.member().await;
    let item = h.item(3_000, 5).await;
    let (order_id, _) = h.order(&member, &[(&item.item_id, 1)]).await;
    h.gateway.fail_charge_call(2);
    let request = parts(
        &order_id,
        &[(2_000, PaymentType::Card), (1_000, PaymentType::Point)],
    );
    assert_eq!(
        payments::pay(&h.app, &member.member_id, &request).await,
        Err(Error::GatewayFailed)
    );
    assert_eq!(
        h.gateway.counts(&order_id),
        (1, 1, 0),
        "the first part was refunded"
    );
    assert_eq!(h.order_status(&order_id).await, OrderStatus::PendingPayment);
    assert_eq!(h.stock(&item.item_id).await, 5);
    assert!(!log.types().contains(&EventType::PaymentCompleted));
    let answer = cafe::http::failure(&Error::GatewayFailed);
    assert_eq!(answer.status(), 502);

    payments::pay(&h.app, &member.member_id, &request)
        .await
        .expect("the retry succeeds");
    assert_eq!(h.gateway.counts(&order_id), (3, 1, 2));
}

#[tokio::test]
async fn cancelling_a_pending_order_and_the_refusals_of_cancel() {
    let (h, log) = setup();
    let (member, stranger) = (h.member().await, h.member().await);
    let item = h.item(1_000, 5).await;
    let (order_id, _) = h.order(&member, &[(&item.item_id, 1)]).await;
    assert_eq!(
        orders::cancel_order(&h.app, &stranger, &order_id).await,
        Err(Error::Forbidden)
    );
    assert_eq!(
        orders::cancel_order(&h.app, &member, "01KF0Q7W3N5X8R2T4V6Y9ZA1BC").await,
        Err(Error::NotFound("order"))
    );
    let cancelled = orders::cancel_order(&h.app, &member, &order_id)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        serde_json::to_value(&cancelled).expect("json")["status"],
        "CANCELLED"
    );
    assert_eq!(
        orders::cancel_order(&h.app, &member, &order_id).await,
        Err(Error::OrderStatusConflict)
    );
    let detail = orders::get_order(&h.app, &member, &order_id)
        .await
        .expect("detail");
    let statuses: Vec<_> = detail.history.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["PENDING_PAYMENT", "CANCELLED"]);
    assert!(log.types().contains(&EventType::OrderCancelled));
    assert_eq!(h.stock(&item.item_id).await, 5);
    assert!(h.gateway.ledger().refunds.is_empty());
}

#[tokio::test]
async fn a_failed_refund_leaves_the_order_cancelled_and_the_reconciler_refunds_each_payment_once() {
    let (h, log) = setup();
    let member = h.member().await;
    let item = h.item(4_000, 5).await;
    let (order_id, _) = h.order(&member, &[(&item.item_id, 2)]).await;
    let request = parts(
        &order_id,
        &[(6_000, PaymentType::Card), (2_000, PaymentType::NaverPay)],
    );
    payments::pay(&h.app, &member.member_id, &request)
        .await
        .expect("paid");
    assert_eq!(h.stock(&item.item_id).await, 3);

    // The second refund fails: the cancellation is already written with its refund attempt,
    // so the member is told it is cancelled and the money still goes back.
    h.gateway.fail_refund_call(2);
    let cancelled = orders::cancel_order(&h.app, &member, &order_id)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(h.stock(&item.item_id).await, 5);
    assert_eq!(
        h.gateway.counts(&order_id),
        (2, 1, 1),
        "the first refund is done, the second is owed"
    );
    assert_eq!(
        orders::cancel_order(&h.app, &member, &order_id).await,
        Err(Error::OrderStatusConflict),
        "cancelled once"
    );

    // Past the attempt's deadline the reconciler refunds what is left, and only that.
    let later = h.app.clock.now() + chrono::Duration::minutes(10);
    let summary = run_reconcile(&h.app, later, &ReconcileOptions::default())
        .await
        .expect("reconciled");
    assert_eq!((summary.refunded, summary.failed), (1, 0), "{summary:?}");
    assert_eq!(h.gateway.counts(&order_id), (2, 2, 0));
    assert_eq!(
        h.gateway.ledger().refunds.len(),
        2,
        "no payment refunded twice"
    );
    let again = run_reconcile(&h.app, later, &ReconcileOptions::default())
        .await
        .expect("reconciled");
    assert_eq!(again.refunded + again.failed, 0, "nothing left: {again:?}");

    let order = orders::get_order(&h.app, &member, &order_id)
        .await
        .expect("detail");
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(
        order
            .payments
            .iter()
            .all(|p| p.status == PaymentStatus::Canceled)
    );
    let statuses: Vec<_> = order.history.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["PENDING_PAYMENT", "COMPLETED", "CANCELLED"]);
    let refunded = log
        .events()
        .into_iter()
        .filter(|e| e.event_type == EventType::PaymentRefunded)
        .count();
    assert_eq!(refunded, 2, "one PaymentRefunded per payment");
}

fn stored(answer: PaymentAnswer) -> cafe::store::StoredResponse {
    answer.to_stored()
}

#[tokio::test]
async fn idempotency_keys_replay_final_answers_and_retry_transient_ones() {
    let (h, _) = setup();
    let (member, other) = (h.member().await, h.member().await);
    let item = h.item(1_000, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;

    // A final 4xx is stored and replayed verbatim.
    let wrong = card(&order_id, total + 1);
    let first = stored(payments::pay_once(&h.app, &member.member_id, &wrong, Some("k-1")).await);
    assert_eq!(first.status, 400);
    assert!(first.body.contains("400PA000"));
    let again = payments::pay_once(&h.app, &member.member_id, &wrong, Some("k-1")).await;
    assert!(matches!(again, PaymentAnswer::Replay(_)));
    assert_eq!(stored(again), first);

    // The same key with another body → 409PA002.
    let right = card(&order_id, total);
    assert_eq!(
        payments::pay_once(&h.app, &member.member_id, &right, Some("k-1")).await,
        PaymentAnswer::Fresh(Err(Error::IdempotencyConflict))
    );

    // A gateway failure is not stored: the same key runs again and succeeds.
    h.gateway.fail_charge_call(1);
    assert_eq!(
        payments::pay_once(&h.app, &member.member_id, &right, Some("k-2")).await,
        PaymentAnswer::Fresh(Err(Error::GatewayFailed))
    );
    let paid = stored(payments::pay_once(&h.app, &member.member_id, &right, Some("k-2")).await);
    assert_eq!(paid.status, 200);
    assert_eq!(
        stored(payments::pay_once(&h.app, &member.member_id, &right, Some("k-2")).await),
        paid
    );
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));

    // Keys are per member: another member's same key is not a replay of this one.
    let (their_order, their_total) = h.order(&other, &[(&item.item_id, 1)]).await;
    let theirs = stored(
        payments::pay_once(
            &h.app,
            &other.member_id,
            &card(&their_order, their_total),
            Some("k-2"),
        )
        .await,
    );
    assert_eq!(theirs.status, 200);
    assert_ne!(theirs.body, paid.body);

    // The payer is judged after the key is taken (with the stock, in one read): a withdrawn
    // member's 403 is not stored, so once restored the same key pays.
    let (leaving_order, leaving_total) = h.order(&other, &[(&item.item_id, 1)]).await;
    cafe::services::members::withdraw(&h.app, &other)
        .await
        .expect("withdrawn");
    let leaving = card(&leaving_order, leaving_total);
    assert_eq!(
        payments::pay_once(&h.app, &other.member_id, &leaving, Some("k-3")).await,
        PaymentAnswer::Fresh(Err(Error::Forbidden))
    );
    let withdrawn = h
        .app
        .store
        .get_member(&other.member_id)
        .await
        .expect("read")
        .expect("member");
    cafe::services::members::restore(&h.app, &withdrawn)
        .await
        .expect("restored");
    let after = stored(payments::pay_once(&h.app, &other.member_id, &leaving, Some("k-3")).await);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(h.gateway.counts(&leaving_order), (1, 0, 1));

    assert_eq!(
        payments::idempotency_key(Some(b"bad key")),
        Err(Error::invalid("Idempotency-Key"))
    );
    let conflict = cafe::http::failure(&Error::IdempotencyConflict);
    assert_eq!(conflict.status(), 409);
}

#[tokio::test]
async fn orders_created_in_the_same_millisecond_list_in_the_order_they_were_made() {
    // A clock that stands still: every order is made in one millisecond.
    let clock = Arc::new(cafe::clock::ManualClock::new(cafe::testing::epoch()));
    let store: Arc<dyn cafe::store::Store> = Arc::new(MemoryStore::new());
    let app = cafe::App::with_store(
        cafe::testing::test_config(),
        clock.clone(),
        store.clone(),
        local_lock(lock_config(10_000, 500)),
    )
    .expect("app");
    let member = cafe::testing::stored_member(
        store.as_ref(),
        "cafe.example",
        false,
        cafe::testing::epoch(),
    )
    .await
    .expect("member");
    let cola = cafe::domain::item::seed_items()
        .into_iter()
        .next()
        .expect("a seed item");
    cafe::store::ItemStore::put_item(store.as_ref(), &cola)
        .await
        .expect("item");
    let request = parse_order(&format!(
        r#"{{"items":[{{"itemId":"{}","quantity":1}}]}}"#,
        cola.item_id
    ))
    .expect("valid body");
    let mut made = Vec::new();
    for _ in 0..30 {
        let order = orders::create_order(&app, &member.member_id, &request)
            .await
            .expect("order");
        made.push(order.order_id);
    }
    let page = orders::list_orders(
        &app,
        &member,
        &ListQuery::parse(Some("100"), None).expect("q"),
    )
    .await
    .expect("list");
    let listed: Vec<String> = page.orders.iter().map(|o| o.order_id.clone()).collect();
    made.reverse();
    assert_eq!(listed, made, "newest first, exactly as made");
}
