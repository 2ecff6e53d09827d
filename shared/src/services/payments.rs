//! Paying an order, at most once.
//!
//! The flow: validate the body → the member must be `SERVICE` → load the order (404/403) → the
//! parts must add up to its total (400PA000) → take the lock on the order and each of its items →
//! re-read the order (must be `PENDING_PAYMENT`, else 400OR001) and the stock (400OR000 before
//! anything is charged) → charge each part → one atomic `complete_payment` (stock taken only if
//! it stays ≥ 0, order moved only if still pending, payments and history written) → release.
//!
//! The lock keeps payers of one order or item from charging cards that cannot be fulfilled; it is
//! not what makes this correct. If the lock expired or was lost, the conditional write still
//! refuses an oversell or a double completion, and every charge of the losing attempt is refunded.

use crate::app::App;
use crate::domain::order::{MAX_PAYMENT_PARTS, RequestedPayment, check_payment_parts};
use crate::domain::{DomainEvent, EventType, Member, Order, OrderStatus, Payment, PaymentStatus};
use crate::error::{Error, Result};
use crate::http::Validate;
use crate::lock::LockLease;
use crate::services::orders::{load_own_order, lock_keys};
use crate::store::{IdempotencyBegin, PaymentCompletion, StoredResponse};
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
fn is_final(outcome: &Result<PaymentReceipt>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(error) => !error.is_transient(),
    }
}

/// Pays with an optional `Idempotency-Key` (scoped to the member): the first request records the
/// key as in progress; a repeat with the same key and body gets the stored answer (status and
/// body, verbatim) without charging; another body under the key, or a repeat while the first
/// still runs → 409PA002.
pub async fn pay_once(
    app: &App,
    member: &Member,
    request: &PaymentRequest,
    key: Option<&str>,
) -> PaymentAnswer {
    let Some(key) = key else {
        return PaymentAnswer::Fresh(pay(app, member, request).await);
    };
    if let Err(error) = member.check_in_service() {
        return PaymentAnswer::Fresh(Err(error));
    }
    let hash = match request.canonical_hash() {
        Ok(hash) => hash,
        Err(error) => return PaymentAnswer::Fresh(Err(error)),
    };
    let begun = app
        .store
        .begin_idempotent(&member.member_id, key, &hash, app.clock.now())
        .await;
    match begun {
        Err(error) => PaymentAnswer::Fresh(Err(error)),
        Ok(IdempotencyBegin::Replay(stored)) => PaymentAnswer::Replay(stored),
        Ok(IdempotencyBegin::Conflict) => PaymentAnswer::Fresh(Err(Error::IdempotencyConflict)),
        Ok(IdempotencyBegin::Started) => {
            let outcome = pay(app, member, request).await;
            let answer = PaymentAnswer::Fresh(outcome);
            let PaymentAnswer::Fresh(outcome) = &answer else {
                return answer;
            };
            if is_final(outcome) {
                let stored = answer.to_stored();
                if let Err(error) = app
                    .store
                    .finish_idempotent(&member.member_id, key, &stored, app.clock.now())
                    .await
                {
                    // The record stays in progress until its lease runs out; a retry after that
                    // runs again and meets the order's new status, so it still cannot charge twice.
                    tracing::warn!(%error, "could not store the idempotent answer");
                }
            } else if let Err(error) = app.store.abandon_idempotent(&member.member_id, key).await {
                tracing::warn!(%error, "could not abandon the idempotency key");
            }
            answer
        }
    }
}

/// Pays the member's own pending order with the requested parts (see the module doc for the flow).
pub async fn pay(app: &App, member: &Member, request: &PaymentRequest) -> Result<PaymentReceipt> {
    request.validate()?;
    member.check_in_service()?;
    let order = load_own_order(app.store.as_ref(), &request.order_id, member).await?;
    let parts = request.parts();
    check_payment_parts(&parts, order.total_price)?;
    let lease = app.lock.acquire(&lock_keys(&order)).await?;
    let outcome = pay_locked(app, &order.order_id, &parts).await;
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

async fn pay_locked(
    app: &App,
    order_id: &str,
    parts: &[RequestedPayment],
) -> Result<PaymentReceipt> {
    let order = app
        .store
        .get_order(order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    order.check_payable()?;
    check_stock(app, &order).await?;

    let mut charged: Vec<Payment> = Vec::with_capacity(parts.len());
    for part in parts {
        match app
            .gateway
            .charge(order_id, part.payment_type, part.amount)
            .await
        {
            Ok(pg_transaction_id) => charged.push(Payment {
                payment_id: crate::ids::new_id(app.clock.now()),
                payment_type: part.payment_type,
                amount: part.amount,
                status: PaymentStatus::Paid,
                pg_transaction_id,
            }),
            Err(error) => {
                refund_all(app, order_id, &charged).await;
                return Err(error);
            }
        }
    }

    let at = app.clock.now();
    let completion = PaymentCompletion {
        order_id: order_id.to_owned(),
        lines: order.items.clone(),
        payments: charged.clone(),
        at,
        events: charged
            .iter()
            .map(|p| DomainEvent::payment(EventType::PaymentCompleted, order_id, p, at))
            .collect(),
    };
    let receipt = PaymentReceipt {
        order_id: order_id.to_owned(),
        status: OrderStatus::Completed,
        payments: charged,
    };
    match app.store.complete_payment(&completion).await {
        Ok(()) => Ok(receipt),
        // The fence held: the stock ran out behind the lock's back.
        Err(refused @ (Error::OutOfStock(_) | Error::NotFound(_))) => {
            refund_all(app, order_id, &receipt.payments).await;
            Err(refused)
        }
        // Someone else paid — or our own write committed and a retry of it (after a timeout)
        // found the order no longer pending. Only the stored payments tell which.
        Err(Error::OrderStatusConflict) => {
            settle_unknown_outcome(app, receipt, Error::OrderStatusConflict).await
        }
        Err(error) => settle_unknown_outcome(app, receipt, error).await,
    }
}

/// Stock must cover every line before a card is charged (400OR000 early); the atomic write checks
/// it again.
async fn check_stock(app: &App, order: &Order) -> Result<()> {
    let ids: Vec<String> = order.items.iter().map(|l| l.item_id.clone()).collect();
    let items = app.store.get_items(&ids).await?;
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

/// The atomic write failed without saying whether it committed (a timeout can hide a commit).
/// Read the order back: completed with our payments → it did; still pending → it did not, so
/// refund; unreadable → leave the charges for reconciliation rather than refund a paid order.
async fn settle_unknown_outcome(
    app: &App,
    receipt: PaymentReceipt,
    error: Error,
) -> Result<PaymentReceipt> {
    match app.store.get_order(&receipt.order_id).await {
        Ok(Some(order))
            if order.status == OrderStatus::Completed && order.payments == receipt.payments =>
        {
            Ok(receipt)
        }
        Ok(_) => {
            refund_all(app, &receipt.order_id, &receipt.payments).await;
            Err(error)
        }
        Err(_) => {
            let pg_ids: Vec<&str> = receipt
                .payments
                .iter()
                .map(|p| p.pg_transaction_id.as_str())
                .collect();
            tracing::error!(order_id = %receipt.order_id, ?pg_ids, %error,
                "charged but the payment's outcome is unknown: needs reconciliation");
            Err(error)
        }
    }
}

/// How often one compensating refund is tried before it is left to reconciliation.
const REFUND_ATTEMPTS: usize = 3;

/// Refunds charges that will not be kept. Each refund is retried (it is idempotent); one that
/// still fails is logged with its transaction id for reconciliation.
async fn refund_all(app: &App, order_id: &str, charges: &[Payment]) {
    for payment in charges {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match app
                .gateway
                .refund(&payment.pg_transaction_id, payment.amount)
                .await
            {
                Ok(()) => break,
                Err(error) if attempt >= REFUND_ATTEMPTS => {
                    tracing::error!(order_id, pg_transaction_id = %payment.pg_transaction_id,
                        %error, "compensating refund failed: needs reconciliation");
                    break;
                }
                Err(_) => {}
            }
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
    fn only_transient_failures_are_retried_under_the_same_key() {
        for transient in [
            Error::GatewayFailed,
            Error::LockBusy,
            Error::Unavailable("redis"),
            Error::Internal("x".into()),
        ] {
            assert!(!is_final(&Err(transient)));
        }
        for final_error in [
            Error::OrderStatusConflict,
            Error::OutOfStock("i".into()),
            Error::PaymentMismatch,
            Error::NotFound("order"),
            Error::Forbidden,
        ] {
            assert!(is_final(&Err(final_error)));
        }
    }
}
