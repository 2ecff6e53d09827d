//! Paying an order, at most once, without ever losing a charge.
//!
//! The flow: validate the body → take the lock (the order's key, from the request; with
//! `LOCK_SCOPE=order-and-items` also each item's, read from the order first) → read the order
//! (one `Query`), then the payer's profile and the stock together (one `BatchGetItem`) → the payer
//! must be a member in `SERVICE` (401/403), the order theirs (404/403), the parts must add up to
//! its total (400PA000), the order `PENDING_PAYMENT` (400OR001) and the stock enough (400OR000,
//! before anything is charged) → refuse
//! (503) unless the deadline leaves time for every charge and the commit → write the payment
//! attempt (`CHARGING`, linked to the `Idempotency-Key`) → charge each part under the key
//! `<attemptId>:<n>` → mark the attempt `CHARGED` → one atomic `complete_payment` (stock taken
//! only if it stays ≥ 0, order moved only if still pending, payments, history, events, the
//! attempt `COMPLETED` and the key's answer), sent with the attempt's `ClientRequestToken` →
//! release.
//!
//! A declined part, or a commit the order or stock refuses, refunds every charged part
//! (`REFUNDING → REFUNDED`). Anything whose outcome is unknown — a charge with no answer, a
//! commit with no answer after its re-sends, a process killed at any point — leaves the attempt
//! unsettled; `payment-reconcile` settles it after its deadline (see `docs/payments.md`).
//!
//! The lock keeps payers of one order from charging twice for it; it is not what makes this
//! correct. If the lock expired or was lost, the conditional write still refuses an oversell or
//! a double completion, and every charge of the losing attempt is refunded.

use crate::app::App;
use crate::config::LockScope;
use crate::deadline::Deadline;
use crate::domain::attempt::{AttemptKind, AttemptPart, AttemptState, PaymentAttempt};
use crate::domain::order::{MAX_PAYMENT_PARTS, RequestedPayment, check_payment_parts};
use crate::domain::{Item, Order, OrderStatus, Payment};
use crate::error::{Error, Result};
use crate::gateway::{Charge, bounded};
use crate::http::Validate;
use crate::lock::LockLease;
use crate::metrics::PaymentOutcome;
use crate::services::orders::lock_keys;
use crate::store::{IdempotencyBegin, IdempotencyOwner, PaymentCompletion, StoredResponse};
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `POST /payment` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentRequest {
    pub order_id: String,
    pub payments: Vec<PaymentPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentPart {
    pub amount: i64,
    #[serde(rename = "type")]
    pub payment_type: crate::domain::PaymentType,
}

impl PaymentRequest {
    fn parts(&self) -> Vec<RequestedPayment> {
        self.payments
            .iter()
            .map(|p| RequestedPayment {
                amount: p.amount,
                payment_type: p.payment_type,
            })
            .collect()
    }

    /// SHA-256 of the canonical body (the parsed request re-serialised, so whitespace and key
    /// order do not matter): what an `Idempotency-Key` is bound to.
    pub fn canonical_hash(&self) -> Result<String> {
        let canonical = serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("payment request encoding failed: {e}")))?;
        Ok(Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

impl Validate for PaymentRequest {
    fn validate(&self) -> Result<()> {
        if self.order_id.is_empty() || self.order_id.len() > 64 {
            return Err(Error::invalid("orderId"));
        }
        if self.payments.is_empty() || self.payments.len() > MAX_PAYMENT_PARTS {
            return Err(Error::invalid("payments"));
        }
        for (index, part) in self.payments.iter().enumerate() {
            if part.amount <= 0 {
                return Err(Error::invalid(format!("payments[{index}].amount")));
            }
        }
        Ok(())
    }
}

/// `POST /payment` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReceipt {
    pub order_id: String,
    pub status: OrderStatus,
    pub payments: Vec<Payment>,
}

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header: absent → `None`; 1–255 visible ASCII characters, else
/// 400CO000 naming `Idempotency-Key`.
pub fn idempotency_key(header: Option<&[u8]>) -> Result<Option<String>> {
    let Some(raw) = header else {
        return Ok(None);
    };
    let visible = raw.iter().all(|b| b.is_ascii_graphic());
    if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_LEN || !visible {
        return Err(Error::invalid("Idempotency-Key"));
    }
    Ok(Some(String::from_utf8_lossy(raw).into_owned()))
}

/// What `POST /payment` answers: computed now, or the stored answer of an earlier request with
/// the same key and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentAnswer {
    Fresh(Result<PaymentReceipt>),
    Replay(StoredResponse),
}

impl PaymentAnswer {
    pub fn into_response(self) -> Response<Body> {
        match self {
            PaymentAnswer::Fresh(outcome) => render(&outcome),
            PaymentAnswer::Replay(stored) => crate::http::json_response(stored.status, stored.body),
        }
    }

    /// Status and body, as stored for a replay.
    pub fn to_stored(&self) -> StoredResponse {
        match self {
            PaymentAnswer::Fresh(outcome) => stored_of(&render(outcome)),
            PaymentAnswer::Replay(stored) => stored.clone(),
        }
    }
}

fn render(outcome: &Result<PaymentReceipt>) -> Response<Body> {
    match outcome {
        Ok(receipt) => crate::http::success(200, receipt),
        Err(error) => crate::http::failure(error),
    }
}

fn stored_of(response: &Response<Body>) -> StoredResponse {
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    };
    StoredResponse {
        status: response.status().as_u16(),
        body,
    }
}

/// True when an outcome is final and must be replayed as is. Outcomes where nothing changed and a
/// retry may succeed (502PA000 gateway failure, 409PA001 lock busy, 503CO000 dependency down,
/// 500) are not stored: the key is abandoned, so the client's retry with the same key really
/// runs instead of replaying a failure forever. Everything else (200, and 4xx answers that the
/// same request will always get) is stored, so a repeat never charges again.
///
/// Refusals of the payer (401CO000, 403CO000) are not stored either: they are judged with the
/// stock, after the key is taken, and a member who restores their membership may retry.
fn is_final(outcome: &Result<PaymentReceipt>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(Error::Unauthorized | Error::Forbidden) => false,
        Err(error) => !error.is_transient(),
    }
}

/// Pays with an optional `Idempotency-Key` (scoped to the member), within the default budget.
pub async fn pay_once(
    app: &App,
    member_id: &str,
    request: &PaymentRequest,
    key: Option<&str>,
) -> PaymentAnswer {
    let deadline = Deadline::after(crate::deadline::DEFAULT_BUDGET, app.clock.now());
    pay_once_within(app, member_id, request, key, deadline).await
}

/// Pays with an optional `Idempotency-Key` (scoped to the member): the first request records the
/// key as in progress, owned by a token of its own; a repeat with the same key and body gets the
/// stored answer (status and body, verbatim) without charging; another body under the key, or a
/// repeat while the first still runs → 409PA002. Once the first request has charged, its key is
/// answered or released only by the settlement of its payment attempt (the request's own, or
/// the reconciler's): until then a repeat gets 409PA002 with `Retry-After`.
///
/// `member_id` is the verified token's: the member itself is read with the stock, under the lock.
pub async fn pay_once_within(
    app: &App,
    member_id: &str,
    request: &PaymentRequest,
    key: Option<&str>,
    deadline: Deadline,
) -> PaymentAnswer {
    let Some(key) = key else {
        return PaymentAnswer::Fresh(
            pay_within(app, member_id, request, None, deadline)
                .await
                .result,
        );
    };
    let hash = match request.canonical_hash() {
        Ok(hash) => hash,
        Err(error) => return PaymentAnswer::Fresh(Err(error)),
    };
    let begun = app
        .store
        .begin_idempotent(member_id, key, &hash, app.clock.now())
        .await;
    let token = match begun {
        Err(error) => return PaymentAnswer::Fresh(Err(error)),
        Ok(IdempotencyBegin::Replay(stored)) => return PaymentAnswer::Replay(stored),
        Ok(IdempotencyBegin::Conflict) => {
            return PaymentAnswer::Fresh(Err(Error::IdempotencyConflict));
        }
        Ok(IdempotencyBegin::Pending) => return PaymentAnswer::Fresh(Err(Error::PaymentSettling)),
        Ok(IdempotencyBegin::Started(token)) => token,
    };
    let owner = IdempotencyOwner {
        member_id: member_id.to_owned(),
        key: key.to_owned(),
        token,
    };
    let paid = pay_within(app, member_id, request, Some(&owner), deadline).await;
    let answer = PaymentAnswer::Fresh(paid.result);
    if paid.charged {
        // The attempt owns the key now: its settlement stores the answer (done already if it
        // completed) or releases the key.
        return answer;
    }
    let PaymentAnswer::Fresh(outcome) = &answer else {
        return answer;
    };
    if is_final(outcome) {
        match app
            .store
            .finish_idempotent(&owner, &answer.to_stored(), app.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the idempotency record was taken over; answer not stored"),
            // The record stays in progress until its lease runs out; a retry after that runs
            // again and meets the order's new status, so it still cannot charge twice.
            Err(error) => tracing::warn!(%error, "could not store the idempotent answer"),
        }
    } else if let Err(error) = app.store.abandon_idempotent(&owner).await {
        tracing::warn!(%error, "could not abandon the idempotency key");
    }
    answer
}

/// The outcome of one payment request.
#[derive(Debug)]
pub struct Paid {
    pub result: Result<PaymentReceipt>,
    /// True once a payment attempt was written: money may have moved, and the attempt (not the
    /// request) decides what happens to its idempotency key.
    pub charged: bool,
}

/// Pays the member's own pending order within the default budget (see [`pay_within`]).
pub async fn pay(app: &App, member_id: &str, request: &PaymentRequest) -> Result<PaymentReceipt> {
    let deadline = Deadline::after(crate::deadline::DEFAULT_BUDGET, app.clock.now());
    pay_within(app, member_id, request, None, deadline)
        .await
        .result
}

/// Pays the member's own pending order with the requested parts (see the module doc for the
/// flow), refusing to start charging when `deadline` leaves too little time to finish.
pub async fn pay_within(
    app: &App,
    member_id: &str,
    request: &PaymentRequest,
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
) -> Paid {
    let mut charged = false;
    let result = pay_checked(app, member_id, request, idempotency, deadline, &mut charged).await;
    app.metrics.payment(match &result {
        Ok(_) => PaymentOutcome::Completed,
        Err(error) if error.wire().status.is_server_error() => PaymentOutcome::Failed,
        Err(_) => PaymentOutcome::Refused,
    });
    Paid { result, charged }
}

async fn pay_checked(
    app: &App,
    member_id: &str,
    request: &PaymentRequest,
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
    charged: &mut bool,
) -> Result<PaymentReceipt> {
    request.validate()?;
    let parts = request.parts();
    let keys = match app.config.lock_scope {
        // The order's key is in the request: lock it, then read the order once, under the lock
        // (a non-owner's or an unknown id holds the lock only for those reads).
        LockScope::Order if crate::ids::is_well_formed(&request.order_id) => {
            vec![crate::lock::order_key(&request.order_id)]
        }
        // The item keys come from the order: read it first (and again under the lock). An
        // ill-formed id is refused here too, after the payer is judged.
        LockScope::Order | LockScope::OrderAndItems => {
            let (order, _) = read_payment(app, member_id, &request.order_id).await?;
            check_payment_parts(&parts, order.total_price)?;
            lock_keys(&order)
        }
    };
    let lease = app.lock.acquire(&keys).await?;
    crate::testing::pause_point("payment:locked");
    let outcome = pay_locked(
        app,
        member_id,
        &request.order_id,
        &parts,
        idempotency,
        deadline,
        charged,
    )
    .await;
    release_logged(app, &lease).await;
    outcome
}

/// Gives the lock back; a failure is logged, not answered (the keys expire by their TTL, and the
/// outcome of the request is already decided).
pub(crate) async fn release_logged(app: &App, lease: &LockLease) {
    if let Err(error) = app.lock.release(lease).await {
        tracing::warn!(%error, keys = lease.keys.len(), "could not release the lock");
    }
}

/// After the deadline of the request that wrote an attempt, this much longer passes before the
/// reconciler may act on it: by then the request has certainly stopped (Lambda ends it at its
/// timeout; the local server's requests keep to their budget).
pub const RECONCILE_GRACE: chrono::Duration = chrono::Duration::seconds(30);

/// The time a payment must have left before it charges anything: every part's gateway call,
/// the write that marks the attempt charged, the commit and one re-send of it, and a margin.
pub fn charge_budget(config: &crate::config::Config, parts: usize) -> std::time::Duration {
    let parts = u32::try_from(parts).unwrap_or(u32::MAX);
    config.gateway_timeout * parts
        + config.dependency_timeout * 3
        + std::time::Duration::from_secs(1)
}

/// What a payment reads before it charges, in two requests: the order (`Query` of its
/// partition), then the payer's profile and the stock of the order's items together (one
/// `BatchGetItem`). The payer is judged first: unknown or `END` → 401CO000, not in `SERVICE` →
/// 403CO000; then the order: unknown → 404CO000, another member's → 403CO000.
async fn read_payment(app: &App, member_id: &str, order_id: &str) -> Result<(Order, Vec<Item>)> {
    let order = if crate::ids::is_well_formed(order_id) {
        app.store.get_order(order_id).await?
    } else {
        None
    };
    let item_ids: Vec<String> = order
        .iter()
        .flat_map(|o| o.items.iter().map(|line| line.item_id.clone()))
        .collect();
    let (member, items) = app.store.get_member_and_items(member_id, &item_ids).await?;
    crate::app::admit(member)?.check_in_service()?;
    let order = order.ok_or(Error::NotFound("order"))?;
    order.check_owner(member_id)?;
    Ok((order, items))
}

async fn pay_locked(
    app: &App,
    member_id: &str,
    order_id: &str,
    parts: &[RequestedPayment],
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
    charged: &mut bool,
) -> Result<PaymentReceipt> {
    // Read under the lock: a payment or cancellation that held it before us is visible.
    let (order, items) = read_payment(app, member_id, order_id).await?;
    check_payment_parts(parts, order.total_price)?;
    order.check_payable()?;
    check_stock(&order, &items)?;
    if !deadline.allows(charge_budget(&app.config, parts.len())) {
        tracing::warn!(remaining = ?deadline.remaining(), "too little time left to charge; refused before charging");
        return Err(Error::Unavailable("time budget"));
    }

    let now = app.clock.now();
    let mut attempt = PaymentAttempt {
        attempt_id: crate::ids::new_id(now),
        kind: AttemptKind::Payment,
        order_id: order_id.to_owned(),
        member_id: order.member_id.clone(),
        parts: parts
            .iter()
            .map(|p| AttemptPart {
                payment_type: p.payment_type,
                amount: p.amount,
                pg_transaction_id: None,
                payment_id: None,
                refunded: false,
            })
            .collect(),
        state: AttemptState::Charging,
        deadline: deadline.wall() + RECONCILE_GRACE,
        committed_at: None,
        commit_sequence: None,
        idempotency_key: idempotency.map(|owner| owner.key.clone()),
        created_at: now,
    };
    app.store.start_attempt(&attempt, idempotency).await?;
    *charged = true;

    for n in 0..attempt.parts.len() {
        let key = attempt.charge_key(n);
        let part = &attempt.parts[n];
        let charge = Charge {
            idempotency_key: &key,
            order_id,
            payment_type: part.payment_type,
            amount: part.amount,
        };
        match bounded(app.config.gateway_timeout, app.gateway.charge(&charge)).await {
            Ok(pg_transaction_id) => {
                attempt.parts[n].pg_transaction_id = Some(pg_transaction_id);
                crate::testing::pause_point(&format!("payment:charged:{n}"));
                // The transaction ids as they come, while the budget has room for the write.
                let rest = charge_budget(&app.config, attempt.parts.len() - n - 1);
                if n + 1 < attempt.parts.len()
                    && deadline.allows(rest + app.config.dependency_timeout)
                    && !app
                        .store
                        .update_attempt(&attempt, AttemptState::Charging)
                        .await?
                {
                    return Err(taken_over(app, &attempt).await);
                }
            }
            Err(Error::GatewayFailed) => {
                // Declined: nothing charged for this part; give back what the others took.
                refund_attempt(app, &mut attempt, AttemptState::Charging).await;
                return Err(Error::GatewayFailed);
            }
            Err(error) => {
                // No answer: this part may or may not be charged. The attempt stays CHARGING;
                // the reconciler finds out by its idempotency key and settles it.
                tracing::warn!(attempt_id = %attempt.attempt_id, part = n, %error,
                    "charge outcome unknown; left to reconciliation");
                app.metrics.left_to_reconciliation(false);
                return Err(Error::Unavailable("payment gateway"));
            }
        }
    }

    attempt.mark_charged(app.clock.now());
    if !app
        .store
        .update_attempt(&attempt, AttemptState::Charging)
        .await?
    {
        return Err(taken_over(app, &attempt).await);
    }
    let order_lines = order.items.clone();
    commit_attempt(app, &attempt, &order_lines).await
}

/// The reconciler moved the attempt on while this request still ran (it outlived its deadline).
/// If it is refunding, the charges this request made after the reconciler looked them up are
/// unknown to it: refund those here. If it is completing, leave everything to it.
async fn taken_over(app: &App, ours: &PaymentAttempt) -> Error {
    tracing::warn!(attempt_id = %ours.attempt_id,
        "the attempt was taken over by the reconciler; this request stops");
    let stored = match app.store.get_attempt(&ours.attempt_id).await {
        Ok(Some(stored)) => stored,
        _ => return Error::Unavailable("payment settlement"),
    };
    if matches!(
        stored.state,
        AttemptState::Refunding | AttemptState::Refunded
    ) {
        for (n, part) in ours.parts.iter().enumerate() {
            let Some(pg_transaction_id) = &part.pg_transaction_id else {
                continue;
            };
            let known = stored
                .parts
                .get(n)
                .and_then(|p| p.pg_transaction_id.as_ref())
                == Some(pg_transaction_id);
            if known {
                continue;
            }
            let key = ours.refund_key(n);
            let refund = app.gateway.refund(pg_transaction_id, part.amount, &key);
            if let Err(error) = bounded(app.config.gateway_timeout, refund).await {
                tracing::error!(attempt_id = %ours.attempt_id, %pg_transaction_id, %error,
                    "a charge the reconciler does not know of could not be refunded");
            }
        }
    }
    Error::Unavailable("payment settlement")
}

/// The receipt a `CHARGED` attempt completes with, and the answer stored for its key.
fn receipt_of(attempt: &PaymentAttempt) -> Result<(PaymentReceipt, StoredResponse)> {
    let receipt = PaymentReceipt {
        order_id: attempt.order_id.clone(),
        status: OrderStatus::Completed,
        payments: attempt.payments()?,
    };
    let stored = stored_of(&crate::http::success(200, &receipt));
    Ok((receipt, stored))
}

/// Commits a `CHARGED` attempt: the order paid, stock taken, the answer stored — or, when the
/// order can no longer be paid, every charge refunded. An unknown outcome leaves it `CHARGED`
/// for the reconciler (503).
pub(crate) async fn commit_attempt(
    app: &App,
    attempt: &PaymentAttempt,
    lines: &[crate::domain::OrderLine],
) -> Result<PaymentReceipt> {
    let (receipt, stored) = receipt_of(attempt)?;
    let answer = attempt.idempotency_key.as_ref().map(|_| stored);
    let completion = PaymentCompletion::of(attempt, lines, answer)?;
    match app.store.complete_payment(&completion).await {
        Ok(()) => {
            crate::testing::pause_point("payment:committed");
            Ok(receipt)
        }
        // The fence held: the order was paid or cancelled meanwhile, or the stock ran out.
        Err(refused @ (Error::OutOfStock(_) | Error::NotFound(_) | Error::OrderStatusConflict)) => {
            let mut attempt = attempt.clone();
            refund_attempt(app, &mut attempt, AttemptState::Charged).await;
            Err(refused)
        }
        Err(error) => {
            tracing::warn!(attempt_id = %attempt.attempt_id, %error,
                "payment commit not settled; left to reconciliation");
            app.metrics.left_to_reconciliation(false);
            Err(error)
        }
    }
}

/// Stock must cover every line before a card is charged (400OR000 early); the atomic write checks
/// it again.
fn check_stock(order: &Order, items: &[Item]) -> Result<()> {
    for line in &order.items {
        let stock = items
            .iter()
            .find(|i| i.item_id == line.item_id)
            .map_or(0, |i| i.stock);
        if stock < line.quantity {
            return Err(Error::OutOfStock(line.item_id.clone()));
        }
    }
    Ok(())
}

/// Moves the attempt from `from` to `REFUNDING`, refunds every charged part and settles it
/// `REFUNDED`. What does not go through (a refund refused or unanswered, a write failing) is
/// left `REFUNDING` for the reconciler; `true` once settled.
pub(crate) async fn refund_attempt(
    app: &App,
    attempt: &mut PaymentAttempt,
    from: AttemptState,
) -> bool {
    let settled = refund_now(app, attempt, from).await;
    if !settled {
        app.metrics.left_to_reconciliation(true);
    }
    settled
}

async fn refund_now(app: &App, attempt: &mut PaymentAttempt, from: AttemptState) -> bool {
    if from != AttemptState::Refunding {
        attempt.state = AttemptState::Refunding;
        match app.store.update_attempt(attempt, from).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(attempt_id = %attempt.attempt_id, "attempt moved on; not refunding it here");
                return false;
            }
            Err(error) => {
                tracing::error!(attempt_id = %attempt.attempt_id, %error,
                    "could not mark the attempt refunding; left to reconciliation");
                return false;
            }
        }
    }
    let mut all_refunded = true;
    for n in 0..attempt.parts.len() {
        if attempt.parts[n].refunded {
            continue;
        }
        let Some(pg_transaction_id) = attempt.parts[n].pg_transaction_id.clone() else {
            // Never charged (or not known to be: the reconciler looks it up first).
            attempt.parts[n].refunded = true;
            continue;
        };
        let key = attempt.refund_key(n);
        let refund = app
            .gateway
            .refund(&pg_transaction_id, attempt.parts[n].amount, &key);
        match bounded(app.config.gateway_timeout, refund).await {
            Ok(()) => {
                attempt.parts[n].refunded = true;
                crate::testing::pause_point(&format!("refund:refunded:{n}"));
            }
            Err(error) => {
                tracing::error!(attempt_id = %attempt.attempt_id, %pg_transaction_id, %error,
                    "refund failed; left to reconciliation");
                all_refunded = false;
            }
        }
    }
    if !all_refunded {
        // Keep what went through, so the reconciler refunds only the rest.
        if let Err(error) = app
            .store
            .update_attempt(attempt, AttemptState::Refunding)
            .await
        {
            tracing::warn!(%error, "could not record the refunds made so far");
        }
        return false;
    }
    match app.store.settle_refunded(attempt).await {
        Ok(settled) => {
            if settled {
                attempt.state = AttemptState::Refunded;
            }
            settled
        }
        Err(error) => {
            tracing::error!(attempt_id = %attempt.attempt_id, %error,
                "refunded but not recorded; the reconciler settles it");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentType;

    fn request(body: &str) -> PaymentRequest {
        serde_json::from_str(body).expect("request")
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(
            idempotency_key(Some(b"order-1:try#2")),
            Ok(Some("order-1:try#2".into()))
        );
        assert!(idempotency_key(Some("k".repeat(255).as_bytes())).is_ok());
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            "한글".as_bytes(),
            "k".repeat(256).as_bytes(),
        ] {
            assert_eq!(
                idempotency_key(Some(bad)),
                Err(Error::invalid("Idempotency-Key"))
            );
        }
    }

    #[test]
    fn the_hash_ignores_layout_but_not_content() {
        let a = request(r#"{"orderId":"o","payments":[{"amount":1500,"type":"CARD"}]}"#);
        let b = request(
            "{ \"payments\" : [ {\"type\":\"CARD\", \"amount\":1500} ], \"orderId\":\"o\" }",
        );
        let c = request(r#"{"orderId":"o","payments":[{"amount":1500,"type":"POINT"}]}"#);
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        assert_ne!(a.canonical_hash(), c.canonical_hash());
        assert_eq!(a.canonical_hash().map(|h| h.len()), Ok(64));
    }

    #[test]
    fn body_rules_name_the_field() {
        let part = |amount| PaymentPart {
            amount,
            payment_type: PaymentType::Card,
        };
        let mut r = PaymentRequest {
            order_id: String::new(),
            payments: vec![part(1)],
        };
        assert_eq!(r.validate(), Err(Error::invalid("orderId")));
        r.order_id = "o".into();
        assert_eq!(r.validate(), Ok(()));
        r.payments = vec![];
        assert_eq!(r.validate(), Err(Error::invalid("payments")));
        r.payments = vec![part(1); 6];
        assert_eq!(r.validate(), Err(Error::invalid("payments")));
        r.payments = vec![part(5), part(0)];
        assert_eq!(r.validate(), Err(Error::invalid("payments[1].amount")));
    }

    #[test]
    fn only_transient_failures_and_refused_payers_are_retried_under_the_same_key() {
        for retried in [
            Error::GatewayFailed,
            Error::LockBusy,
            Error::Unavailable("redis"),
            Error::Internal("x".into()),
            // Judged after the key is taken: a member restored may retry with it.
            Error::Unauthorized,
            Error::Forbidden,
        ] {
            assert!(!is_final(&Err(retried)));
        }
        for final_error in [
            Error::OrderStatusConflict,
            Error::OutOfStock("i".into()),
            Error::PaymentMismatch,
            Error::NotFound("order"),
        ] {
            assert!(is_final(&Err(final_error)));
        }
    }
}
