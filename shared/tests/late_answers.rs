//! Writes DynamoDB applied but answered late (issue 25).
//!
//! A [`DelayingProxy`] between the service's DynamoDB client and moto lets one chosen write
//! through and holds its answer past the SDK's per-try timeout (the production SDK
//! configuration of `cafe::aws`: attempt timeout half the dependency timeout, 3 attempts), so the
//! SDK sends it again and the re-send fails its condition on the first send's own result. Every
//! write must recognise its own earlier success: the client gets the true answer at once (200 if
//! it completed, an honest 502 with nothing left charged, never 500), and the mock gateway's
//! ledger agrees with that answer without any reconciler run.

#[path = "late_support/mod.rs"]
mod late_support;
#[path = "order_support/mod.rs"]
mod order_support;

use cafe::domain::attempt::AttemptState;
use cafe::domain::item::StockMode;
use cafe::domain::{Gender, Member, MemberStatus, OrderStatus, PaymentType, Role};
use cafe::services::members::{self, SignUp};
use cafe::services::orders;
use cafe::services::payments::{self, PaymentRequest};
use cafe::services::staff::{self, FulfilmentRequest, ItemPatchRequest, RoleRequest, StockRequest};
use cafe::store::dynamo::DynamoStore;
use cafe::store::{Store, StoredResponse};
use late_support::DelayingProxy;
use order_support::{Harness, card, harness, local_lock, lock_config, parts, quick_gateway};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The SDK's dependency timeout in these tests: each try may take half of it (3 s, so a busy
/// moto under `--test-threads=4` does not time out the calls that are not held).
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the chosen answer is held: past the per-try timeout.
const HOLD: Duration = Duration::from_millis(3_500);
/// "At once": the held try, the SDK's backoff and its re-send, and the rest of the request.
const ANSWERED_WITHIN: Duration = Duration::from_secs(15);

/// The service over a fresh table, its DynamoDB client talking to moto through the proxy.
async fn through_proxy() -> (Arc<Harness>, DelayingProxy) {
    let moto = cafe::testing::dynamodb_endpoint();
    let proxy = DelayingProxy::start(&moto, HOLD).await;
    let direct = cafe::aws::Aws::load(Some(&moto), Duration::from_secs(30)).await;
    let name = format!("cafe-late-{}", ulid::Ulid::new().to_string().to_lowercase());
    cafe::store::dynamo::table::create_table_with(&direct.dynamodb(), &name, false)
        .await
        .expect("table");
    let proxied = cafe::aws::Aws::load(Some(&proxy.url), DEPENDENCY_TIMEOUT).await;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(proxied.dynamodb(), name, 400));
    let h = harness(
        store,
        local_lock(lock_config(60_000, 1_000)),
        quick_gateway(),
    );
    (h, proxy)
}

/// Pays and answers as `POST /payment` would, timing it.
async fn pay(
    h: &Harness,
    member_id: &str,
    request: &PaymentRequest,
    key: Option<&str>,
) -> StoredResponse {
    let started = Instant::now();
    let answer = payments::pay_once(&h.app, member_id, request, key)
        .await
        .to_stored();
    assert!(
        started.elapsed() < ANSWERED_WITHIN,
        "answered after {:?}: {answer:?}",
        started.elapsed()
    );
    answer
}

fn code_of(answer: &StoredResponse) -> String {
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("json body");
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The state of the order's one payment attempt (named by the charge keys in the ledger).
async fn attempt_state(h: &Harness, order_id: &str) -> AttemptState {
    let ledger = h.gateway.ledger();
    let charge = ledger
        .charges
        .iter()
        .find(|c| c.order_id == order_id)
        .expect("a charge of the order");
    let attempt_id = charge
        .idempotency_key
        .split(':')
        .next()
        .expect("attempt id");
    h.app
        .store
        .get_attempt(attempt_id)
        .await
        .expect("read attempt")
        .expect("attempt")
        .state
}

fn held(proxy: &DelayingProxy, target: &str) {
    assert_eq!(
        proxy.held(),
        [format!("DynamoDB_20120810.{target}")],
        "the chosen answer was held once"
    );
}

/// (a) A split payment whose second part is declined: marking the attempt `REFUNDING` is
/// answered late. The first part is refunded here and now: 502PA000 is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_whose_refunding_mark_is_answered_late_refunds_before_answering_502() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_000, 10).await;
    let (order_id, _) = h.order(&member, &[(&item.item_id, 1)]).await;
    h.gateway.fail_charge_call(2);
    proxy.hold("PutItem", r#""S":"REFUNDING""#, 1);
    let split = parts(
        &order_id,
        &[(600, PaymentType::Card), (400, PaymentType::Point)],
    );
    let answer = pay(&h, &member.member_id, &split, None).await;
    held(&proxy, "PutItem");
    assert_eq!(
        (answer.status, code_of(&answer).as_str()),
        (502, "502PA000"),
        "{answer:?}"
    );
    // Nothing left charged: one charge, refunded; the attempt settled; the order still payable.
    assert_eq!(h.gateway.counts(&order_id), (1, 1, 0));
    assert_eq!(attempt_state(&h, &order_id).await, AttemptState::Refunded);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::PendingPayment);
    assert_eq!(h.stock(&item.item_id).await, 10);
}

/// (b) Both parts charged; the write that marks the attempt `CHARGED` is answered late. The
/// payment completes: 200, not 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parts_charged_and_the_charged_mark_answered_late_completes_with_200() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_000, 10).await;
    let (order_id, _) = h.order(&member, &[(&item.item_id, 1)]).await;
    proxy.hold("PutItem", r#""S":"CHARGED""#, 1);
    let split = parts(
        &order_id,
        &[(600, PaymentType::Card), (400, PaymentType::Point)],
    );
    let answer = pay(&h, &member.member_id, &split, Some("split-1")).await;
    held(&proxy, "PutItem");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(h.gateway.counts(&order_id), (2, 0, 2));
    assert_eq!(attempt_state(&h, &order_id).await, AttemptState::Completed);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Completed);
    assert_eq!(h.stock(&item.item_id).await, 9);
    // The key answers what the request answered.
    let again = pay(&h, &member.member_id, &split, Some("split-1")).await;
    assert_eq!(again, answer);
    assert_eq!(h.gateway.counts(&order_id), (2, 0, 2));
}

/// (c) Without an `Idempotency-Key`: the put that starts the attempt is answered late. Its
/// re-send finds the attempt it wrote — not an "attempt id collision" (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_start_answered_late_is_ours_not_a_collision() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;
    proxy.hold("PutItem", r#""S":"CHARGING""#, 1);
    let answer = pay(&h, &member.member_id, &card(&order_id, total), None).await;
    held(&proxy, "PutItem");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));
    assert_eq!(attempt_state(&h, &order_id).await, AttemptState::Completed);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Completed);
    assert_eq!(h.stock(&item.item_id).await, 8);
}

/// (d) Under an `Idempotency-Key`, the transaction that starts the attempt and links the key is
/// answered late, then the card is declined: 502PA000 and the key released, as a decline
/// releases it — the retry under the same key runs and pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_after_a_late_attempt_start_releases_the_key() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
    h.gateway.fail_charge_call(1);
    proxy.hold("TransactWriteItems", r#""S":"CHARGING""#, 1);
    let request = card(&order_id, total);
    let answer = pay(&h, &member.member_id, &request, Some("declined-1")).await;
    held(&proxy, "TransactWriteItems");
    assert_eq!(
        (answer.status, code_of(&answer).as_str()),
        (502, "502PA000"),
        "{answer:?}"
    );
    assert_eq!(h.gateway.counts(&order_id), (0, 0, 0));
    let retry = pay(&h, &member.member_id, &request, Some("declined-1")).await;
    assert_eq!(retry.status, 200, "the key was released: {retry:?}");
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Completed);
}

/// The put that takes the `Idempotency-Key` is answered late: its re-send finds the record this
/// request just wrote (its own owner token) and goes on to pay, instead of 409PA002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_taken_with_a_late_answer_is_ours() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
    proxy.hold("PutItem", "IN_PROGRESS", 1);
    let request = card(&order_id, total);
    let answer = pay(&h, &member.member_id, &request, Some("late-key")).await;
    held(&proxy, "PutItem");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));
    let again = pay(&h, &member.member_id, &request, Some("late-key")).await;
    assert_eq!(again, answer);
}

/// The completing transaction is answered late (moto ignores its `ClientRequestToken`, so the
/// re-send fails its conditions): recognised from the attempt `COMPLETED` as the commit wrote
/// it — 200, the charge kept, the key answering the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_answered_late_completes_once() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
    proxy.hold("TransactWriteItems", r#""S":"COMPLETED""#, 1);
    let request = card(&order_id, total);
    let answer = pay(&h, &member.member_id, &request, Some("commit-1")).await;
    held(&proxy, "TransactWriteItems");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));
    assert_eq!(attempt_state(&h, &order_id).await, AttemptState::Completed);
    assert_eq!(h.stock(&item.item_id).await, 9);
    let again = pay(&h, &member.member_id, &request, Some("commit-1")).await;
    assert_eq!(again, answer);
}

// The same harness over the other writes that share the helpers: a re-sent transaction finds
// its own event (fresh per call) already stored and counts as applied.

/// The paid cancel's transaction (order `CANCELLED`, stock back, the refund attempt) is answered
/// late: the cancellation stands (not 400OR001) and the charge is refunded now, not by the
/// reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_cancel_answered_late_cancels_and_refunds_now() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;
    let paid = pay(&h, &member.member_id, &card(&order_id, total), None).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    proxy.hold("TransactWriteItems", r#""S":"REFUNDING""#, 1);
    let started = Instant::now();
    let cancelled = orders::cancel_order(&h.app, &member, &order_id).await;
    assert!(started.elapsed() < ANSWERED_WITHIN);
    held(&proxy, "TransactWriteItems");
    let cancelled = cancelled.expect("the cancellation applied");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Cancelled);
    assert_eq!(h.stock(&item.item_id).await, 10);
    assert_eq!(h.gateway.counts(&order_id), (1, 1, 0));
}

/// An admin (the stored role is not re-read by these use cases).
async fn staff_member(h: &Harness) -> Member {
    Member {
        role: Role::Admin,
        ..h.member().await
    }
}

/// A price edit answered late stands (version 1), not 409IT000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_edit_answered_late_stands() {
    let (h, proxy) = through_proxy().await;
    let admin = staff_member(&h).await;
    let item = h.item(1_500, 10).await;
    proxy.hold("TransactWriteItems", "ItemUpdated", 1);
    let patch = ItemPatchRequest {
        version: 0,
        name: None,
        price: Some(1_800),
        active: None,
    };
    let edited = staff::update_item(&h.app, &admin, &item.item_id, &patch).await;
    held(&proxy, "TransactWriteItems");
    assert_eq!(edited.expect("the edit applied").version, 1);
    let stored = stored_item(&h, &item.item_id).await;
    assert_eq!((stored.price, stored.version), (1_800, 1));
}

/// A stock delivery answered late stands once (stock 15, version 1), not 409IT000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_change_answered_late_stands_once() {
    let (h, proxy) = through_proxy().await;
    let admin = staff_member(&h).await;
    let item = h.item(1_500, 10).await;
    proxy.hold("TransactWriteItems", "ItemStockChanged", 1);
    let delivery = StockRequest {
        mode: StockMode::Add,
        quantity: 5,
        reason: "delivery".into(),
        version: 0,
    };
    let stocked = staff::change_stock(&h.app, &admin, &item.item_id, &delivery).await;
    held(&proxy, "TransactWriteItems");
    assert_eq!(stocked.expect("the stock change applied").version, 1);
    let stored = stored_item(&h, &item.item_id).await;
    assert_eq!((stored.stock, stored.version), (15, 1));
}

/// A fulfilment step answered late stands (`PREPARING`), not 400OR001 (the store now says so;
/// the use case also read the order back after a refused step, so this one passed before too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfilment_step_answered_late_stands() {
    let (h, proxy) = through_proxy().await;
    let admin = staff_member(&h).await;
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
    let paid = pay(&h, &member.member_id, &card(&order_id, total), None).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    proxy.hold("TransactWriteItems", "OrderFulfilmentAdvanced", 1);
    let preparing = FulfilmentRequest {
        status: "PREPARING".into(),
    };
    let advanced = staff::advance_order(&h.app, &admin, &order_id, &preparing).await;
    held(&proxy, "TransactWriteItems");
    advanced.expect("the step applied");
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Preparing);
}

/// A role grant answered late stands, not 500 ("role change cancelled": the re-send's role
/// condition holds, only its event row is there already).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_grant_answered_late_stands() {
    let (h, proxy) = through_proxy().await;
    let admin = staff_member(&h).await;
    let member = h.member().await;
    proxy.hold("TransactWriteItems", "MemberRoleChanged", 1);
    let staff_role = RoleRequest {
        role: "STAFF".into(),
    };
    let granted = staff::grant_role(&h.app, &admin, &member.member_id, &staff_role).await;
    held(&proxy, "TransactWriteItems");
    granted.expect("the grant applied");
    assert_eq!(stored_member(&h, &member.member_id).await.role, Role::Staff);
}

async fn stored_item(h: &Harness, item_id: &str) -> cafe::domain::Item {
    h.app
        .store
        .get_item(item_id)
        .await
        .expect("read")
        .expect("item")
}

/// Sign-up answered late: the member is registered and gets its tokens — not 400ME000 for its
/// own email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_answered_late_registers_the_member() {
    let (h, proxy) = through_proxy().await;
    proxy.hold("TransactWriteItems", "MemberRegistered", 1);
    let email = format!("{}@late.test", ulid::Ulid::new().to_string().to_lowercase());
    let signed_up = members::sign_up(&h.app, sign_up_as(&email)).await;
    held(&proxy, "TransactWriteItems");
    signed_up.expect("registered");
    let stored = h
        .app
        .store
        .find_member_by_email(&email)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(stored.name, "Late");
}

/// A withdrawal, then a restore, each answered late: each stands (not 400ME001, 400ME002).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_and_a_restore_answered_late_stand() {
    let (h, proxy) = through_proxy().await;
    let member = h.member().await;
    proxy.hold("TransactWriteItems", "MemberWithdrawn", 1);
    let withdrawn = members::withdraw(&h.app, &member).await;
    held(&proxy, "TransactWriteItems");
    assert_eq!(
        withdrawn.expect("the withdrawal applied").status,
        MemberStatus::Withdrawn
    );
    let withdrawn_member = stored_member(&h, &member.member_id).await;
    assert_eq!(withdrawn_member.status, MemberStatus::Withdrawn);

    proxy.hold("TransactWriteItems", "MemberRestored", 1);
    let restored = members::restore(&h.app, &withdrawn_member).await;
    assert_eq!(proxy.held().len(), 2, "both answers were held");
    assert_eq!(
        restored.expect("the restore applied").status,
        MemberStatus::Service
    );
    assert_eq!(
        stored_member(&h, &member.member_id).await.status,
        MemberStatus::Service
    );
}

async fn stored_member(h: &Harness, member_id: &str) -> Member {
    h.app
        .store
        .get_member(member_id)
        .await
        .expect("read")
        .expect("member")
}

fn sign_up_as(email: &str) -> SignUp {
    SignUp {
        name: "Late".into(),
        email: email.to_owned(),
        phone_number: "010-1234-5678".into(),
        gender: Gender::Female,
        birth: chrono::NaiveDate::from_ymd_opt(1990, 5, 17).expect("date"),
        password: "correct horse battery staple".into(),
        source_ip: None,
    }
}

/// A refresh-token rotation answered late is this call's own rotation, not a reuse — even with
/// no grace window (`REFRESH_REUSE_GRACE` 0), where a reuse revokes the whole family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_answered_late_is_not_a_reuse() {
    let (mut h, proxy) = through_proxy().await;
    Arc::get_mut(&mut h)
        .expect("the only handle")
        .app
        .config
        .refresh_reuse_grace = chrono::Duration::zero();
    let email = format!("{}@late.test", ulid::Ulid::new().to_string().to_lowercase());
    let pair = members::sign_up(&h.app, sign_up_as(&email))
        .await
        .expect("signed up");
    proxy.hold("TransactWriteItems", "successorHash", 1);
    let rotated = members::refresh(&h.app, &pair.refresh_token).await;
    held(&proxy, "TransactWriteItems");
    let rotated = rotated.expect("rotated, not taken for a reuse");
    // The family stands: its new token rotates again.
    members::refresh(&h.app, &rotated.refresh_token)
        .await
        .expect("the family was not revoked");
}
