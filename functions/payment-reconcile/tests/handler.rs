//! The scheduled reconciler on the embedded default: payments whose gateway answer was lost are
//! settled (completed when the order can still be paid, refunded otherwise), their
//! `Idempotency-Key` answers 409PA002 until then and the settled answer after; the sample event;
//! the production guard on `now`.

use cafe::app::MemoryParts;
use cafe::config::GatewayConfig;
use cafe::domain::{Item, Member, OrderStatus, PaymentType};
use cafe::services::orders::{self, CreateOrderRequest, LineRequest};
use cafe::services::payments::{self, PaymentAnswer, PaymentPart, PaymentRequest};
use cafe::{App, Error, testing};
use serde_json::{Value, json};

fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/payment-reconcile.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json")
}

/// An app whose gateway loses every answer (charges made, caller told nothing).
async fn losing_answers(
    production: bool,
) -> (
    App,
    MemoryParts,
    Member,
    String,
    std::sync::Arc<cafe::clock::ManualClock>,
) {
    let config = cafe::config::Config {
        production,
        gateway: GatewayConfig {
            max_latency: std::time::Duration::ZERO,
            drop_rate: 1.0,
            ..GatewayConfig::default()
        },
        ..testing::test_config()
    };
    let clock = testing::manual_clock();
    let (app, parts) = App::in_memory(config, clock.clone()).await.expect("app");
    let now = app.clock.now();
    let member = cafe::testing::stored_member(app.store.as_ref(), "reconcile.test", false, now)
        .await
        .expect("member");
    let item = Item {
        item_id: cafe::ids::new_id(now),
        name: "Latte".into(),
        price: 4_500,
        stock: 5,
        active: true,
        version: 0,
    };
    app.store.put_item(&item).await.expect("item");
    let order = orders::create_order(
        &app,
        &member.member_id,
        &CreateOrderRequest {
            items: vec![LineRequest {
                item_id: item.item_id.clone(),
                quantity: 2,
            }],
        },
    )
    .await
    .expect("order");
    (app, parts, member, order.order_id, clock)
}

fn split(order_id: &str) -> PaymentRequest {
    PaymentRequest {
        order_id: order_id.into(),
        payments: vec![
            PaymentPart {
                amount: 5_000,
                payment_type: PaymentType::Card,
            },
            PaymentPart {
                amount: 4_000,
                payment_type: PaymentType::Point,
            },
        ],
    }
}

fn card(order_id: &str) -> PaymentRequest {
    PaymentRequest {
        order_id: order_id.into(),
        payments: vec![PaymentPart {
            amount: 9_000,
            payment_type: PaymentType::Card,
        }],
    }
}

fn status_of(answer: &PaymentAnswer) -> u16 {
    answer.to_stored().status
}

fn answering(parts: &MemoryParts) {
    parts.gateway.set_config(GatewayConfig {
        max_latency: std::time::Duration::ZERO,
        ..GatewayConfig::default()
    });
}

async fn order_status(app: &App, order_id: &str) -> OrderStatus {
    app.store
        .get_order(order_id)
        .await
        .expect("read")
        .expect("order")
        .status
}

#[tokio::test]
async fn a_charge_whose_answer_was_lost_is_completed_and_its_key_answers_after() {
    let (app, parts, member, order_id, _clock) = losing_answers(false).await;
    let measured = app.metrics.start_recording();
    let first = payments::pay_once(&app, &member.member_id, &card(&order_id), Some("key-1")).await;
    assert_eq!(status_of(&first), 503, "{:?}", first.to_stored());
    assert_eq!(measured.sum("PaymentsLeftToReconciliation", &[]), 1.0);
    assert_eq!(measured.sum("PaymentsFailed", &[]), 1.0);
    // Charged at the gateway, nothing kept in the order yet.
    assert_eq!(parts.gateway.ledger().charges.len(), 1);
    assert_eq!(
        order_status(&app, &order_id).await,
        OrderStatus::PendingPayment
    );
    // The retry under the same key waits for the attempt: 409PA002 with Retry-After.
    let waiting =
        payments::pay_once(&app, &member.member_id, &card(&order_id), Some("key-1")).await;
    assert_eq!(waiting, PaymentAnswer::Fresh(Err(Error::PaymentSettling)));
    let wire = Error::PaymentSettling.wire();
    assert_eq!((wire.code, wire.retry_after.is_some()), ("409PA002", true));
    assert_eq!(parts.gateway.ledger().charges.len(), 1, "no second charge");

    answering(&parts);
    let summary = payment_reconcile::handle(sample(), None, &app)
        .await
        .expect("run");
    assert_eq!(
        (summary.completed, summary.refunded, summary.failed),
        (1, 0, 0)
    );
    assert!(summary.complete);
    assert_eq!(measured.sum("AttemptsSettled", &[]), 1.0);
    assert_eq!(measured.sum("ReconcileBacklog", &[]), 0.0);
    assert_eq!(order_status(&app, &order_id).await, OrderStatus::Completed);
    let ledger = parts.gateway.ledger();
    assert_eq!((ledger.charges.len(), ledger.refunds.len()), (1, 0));
    assert_eq!(ledger.net_for_order(&order_id), 9_000);
    let order = app
        .store
        .get_order(&order_id)
        .await
        .expect("read")
        .expect("order");
    let item = app
        .store
        .get_item(&order.items[0].item_id)
        .await
        .expect("read");
    assert_eq!(item.map(|i| i.stock), Some(3), "stock taken once");

    // The key now answers the settled payment, verbatim, without charging.
    let replay = payments::pay_once(&app, &member.member_id, &card(&order_id), Some("key-1")).await;
    let PaymentAnswer::Replay(stored) = replay else {
        panic!("expected the stored answer, got {replay:?}");
    };
    assert_eq!(stored.status, 200);
    let body: Value = serde_json::from_str(&stored.body).expect("json");
    assert_eq!(body["result"]["status"], "COMPLETED");
    assert_eq!(parts.gateway.ledger().charges.len(), 1);

    let again = payment_reconcile::handle(sample(), None, &app)
        .await
        .expect("run");
    assert_eq!(
        (again.completed, again.refunded, again.skipped, again.failed),
        (0, 0, 0, 0),
        "settled attempts leave the work list"
    );
}

#[tokio::test]
async fn a_split_payment_cut_after_its_first_part_is_refunded_and_the_key_released() {
    let (app, parts, member, order_id, _clock) = losing_answers(false).await;
    let first = payments::pay_once(&app, &member.member_id, &split(&order_id), Some("key-2")).await;
    assert_eq!(status_of(&first), 503);
    // The first part was charged (answer lost); the second never was. The reconciler never
    // charges: it refunds the first.
    answering(&parts);
    let summary = payment_reconcile::handle(sample(), None, &app)
        .await
        .expect("run");
    assert_eq!((summary.completed, summary.refunded), (0, 1));
    assert_eq!(
        order_status(&app, &order_id).await,
        OrderStatus::PendingPayment
    );
    assert_eq!(parts.gateway.ledger().net_for_order(&order_id), 0);

    // Released: the retry with the same key really runs, and pays.
    let retry = payments::pay_once(&app, &member.member_id, &split(&order_id), Some("key-2")).await;
    assert_eq!(status_of(&retry), 200, "{:?}", retry.to_stored());
    assert_eq!(order_status(&app, &order_id).await, OrderStatus::Completed);
    let ledger = parts.gateway.ledger();
    assert_eq!(ledger.net_for_order(&order_id), 9_000);
    assert_eq!((ledger.charges.len(), ledger.refunds.len()), (3, 1));
}

#[tokio::test]
async fn an_order_cancelled_meanwhile_gets_its_lost_charge_back() {
    let (app, parts, member, order_id, _clock) = losing_answers(false).await;
    let first = payments::pay_once(&app, &member.member_id, &card(&order_id), None).await;
    assert_eq!(status_of(&first), 503);
    orders::cancel_order(&app, &member, &order_id)
        .await
        .expect("the pending order is cancelled");
    answering(&parts);
    let summary = payment_reconcile::handle(sample(), None, &app)
        .await
        .expect("run");
    assert_eq!((summary.completed, summary.refunded), (0, 1));
    assert_eq!(order_status(&app, &order_id).await, OrderStatus::Cancelled);
    let ledger = parts.gateway.ledger();
    assert_eq!((ledger.charges.len(), ledger.refunds.len()), (1, 1));
}

#[tokio::test]
async fn production_refuses_the_now_override_and_settles_nothing() {
    let (app, parts, member, order_id, clock) = losing_answers(true).await;
    let first = payments::pay_once(&app, &member.member_id, &card(&order_id), None).await;
    assert_eq!(status_of(&first), 503);
    answering(&parts);
    let refused = payment_reconcile::handle(sample(), None, &app).await;
    assert!(
        matches!(refused, Err(Error::InvalidParameter(ref f)) if f.starts_with("now")),
        "{refused:?}"
    );
    assert_eq!(
        order_status(&app, &order_id).await,
        OrderStatus::PendingPayment
    );
    // The scheduled event (no `now`) runs on the clock: not due until the attempt's deadline.
    let scheduled = json!({"detail-type": "Scheduled Event", "detail": {}});
    let early = payment_reconcile::handle(scheduled.clone(), None, &app)
        .await
        .expect("run");
    assert_eq!(early.completed, 0);
    clock.advance(chrono::Duration::minutes(2));
    let due = payment_reconcile::handle(scheduled, None, &app)
        .await
        .expect("run");
    assert_eq!(due.completed, 1);
    assert_eq!(order_status(&app, &order_id).await, OrderStatus::Completed);
}

#[tokio::test]
async fn a_refused_run_is_reported_as_a_named_error() {
    let (app, _parts, _member, _order_id, _clock) = losing_answers(true).await;
    let event = lambda_runtime::LambdaEvent::new(sample(), lambda_runtime::Context::default());
    let refused = payment_reconcile::invoke(event, &app)
        .await
        .expect_err("`now` is refused in production");
    let reported = lambda_runtime::Diagnostic::from(refused);
    assert_eq!(reported.error_type, "RunFailed");
    assert!(
        reported.error_message.starts_with("400CO000 parameter now"),
        "{}",
        reported.error_message
    );
}
