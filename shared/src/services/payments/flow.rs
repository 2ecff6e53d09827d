//! The paying flow (see the module doc of [`crate::services::payments`]).

use super::request::{PaymentReceipt, PaymentRequest, stored_of};
use crate::config::LockScope;
use crate::deadline::Deadline;
use crate::deps::{HasClock, HasConfig, HasGateway, HasLock, HasMetrics, HasStore};
use crate::domain::attempt::{
    AttemptKind, AttemptPart, AttemptState, PaymentAttempt, RECONCILE_GRACE,
};
use crate::domain::floor::FloorSlot;
use crate::domain::member::Caller;
use crate::domain::order::{RequestedPayment, check_payment_parts};
use crate::domain::{Item, Order, OrderStatus};
use crate::error::{Error, Result};
use crate::gateway::{Charge, bounded};
use crate::http::Validate;
use crate::lock::{keys_of_order, release_logged};
use crate::metrics::PaymentOutcome;
use crate::services::refunds::{RefundDeps, refund_attempt};
use crate::store::{IdempotencyOwner, PaymentCompletion, StoredResponse};

/// What paying uses: the store, the clock, the lock, the gateway, the configuration and the
/// metrics — everything but tokens, passwords and the login throttle.
pub trait PaymentDeps: HasStore + HasClock + HasLock + HasGateway + HasConfig + HasMetrics {}

impl<T: HasStore + HasClock + HasLock + HasGateway + HasConfig + HasMetrics + ?Sized> PaymentDeps
    for T
{
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
pub async fn pay(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    request: &PaymentRequest,
) -> Result<PaymentReceipt> {
    let deadline = Deadline::after(crate::deadline::DEFAULT_BUDGET, deps.clock().now());
    pay_within(deps, caller, request, None, deadline)
        .await
        .result
}

/// Pays the member's own pending order with the requested parts (see the module doc for the
/// flow), refusing to start charging when `deadline` leaves too little time to finish.
pub async fn pay_within(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    request: &PaymentRequest,
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
) -> Paid {
    let mut charged = false;
    let result = pay_checked(deps, caller, request, idempotency, deadline, &mut charged).await;
    deps.metrics().payment(match &result {
        Ok(_) => PaymentOutcome::Completed,
        Err(error) if error.wire().status.is_server_error() => PaymentOutcome::Failed,
        Err(_) => PaymentOutcome::Refused,
    });
    Paid { result, charged }
}

async fn pay_checked(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    request: &PaymentRequest,
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
    charged: &mut bool,
) -> Result<PaymentReceipt> {
    request.validate()?;
    let parts = request.parts();
    let keys = match deps.config().lock_scope {
        // The order's key is in the request: lock it, then read the order once, under the lock
        // (a non-owner's or an unknown id holds the lock only for those reads).
        LockScope::Order if crate::ids::is_well_formed(&request.order_id) => {
            vec![crate::lock::order_key(&request.order_id)]
        }
        // The item keys come from the order: read it first (and again under the lock). An
        // ill-formed id is refused here too, after the payer is judged.
        LockScope::Order | LockScope::OrderAndItems => {
            let (order, _) = read_payment(deps, caller, &request.order_id).await?;
            check_payment_parts(&parts, order.total_price)?;
            keys_of_order(&order)
        }
    };
    let lease = deps.lock().acquire(&keys).await?;
    crate::fault::pause_point("payment:locked");
    let outcome = pay_locked(
        deps,
        caller,
        &request.order_id,
        &parts,
        idempotency,
        deadline,
        charged,
    )
    .await;
    release_logged(deps.lock(), &lease).await;
    outcome
}

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
async fn read_payment(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    order_id: &str,
) -> Result<(Order, Vec<Item>)> {
    let order = if crate::ids::is_well_formed(order_id) {
        deps.store().get_order(order_id).await?
    } else {
        None
    };
    let item_ids: Vec<String> = order
        .iter()
        .flat_map(|o| o.items.iter().map(|line| line.item_id.clone()))
        .collect();
    let (member, items) = deps
        .store()
        .get_member_and_items(caller.member_id(), &item_ids)
        .await?;
    crate::domain::member::admit(member, caller)?.check_in_service()?;
    let order = order.ok_or(Error::NotFound("order"))?;
    order.check_owner(caller.member_id())?;
    Ok((order, items))
}

async fn pay_locked(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    order_id: &str,
    parts: &[RequestedPayment],
    idempotency: Option<&IdempotencyOwner>,
    deadline: Deadline,
    charged: &mut bool,
) -> Result<PaymentReceipt> {
    // Read under the lock: a payment or cancellation that held it before us is visible.
    let (order, items) = read_payment(deps, caller, order_id).await?;
    check_payment_parts(parts, order.total_price)?;
    order.check_payable()?;
    check_payment_window(deps, &order)?;
    check_stock(&order, &items)?;
    if !deadline.allows(charge_budget(deps.config(), parts.len())) {
        tracing::warn!(remaining = ?deadline.remaining(), "too little time left to charge; refused before charging");
        return Err(Error::Unavailable("time budget"));
    }

    let now = deps.clock().now();
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
        // A slot on the floor, reserved by the attempt's own write (refused → nothing charged).
        floor: Some(FloorSlot {
            max_in_progress: deps.config().floor.max_in_progress,
            max_open_per_member: deps.config().floor.max_open_per_member,
            pickup_number: None,
            business_day: None,
        }),
    };
    if let Err(refused) = deps.store().start_attempt(&attempt, idempotency).await {
        return Err(with_floor_wait(deps, refused).await);
    }
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
        match bounded(
            deps.config().gateway_timeout,
            deps.gateway().charge(&charge),
        )
        .await
        {
            Ok(pg_transaction_id) => {
                attempt.parts[n].pg_transaction_id = Some(pg_transaction_id);
                crate::fault::pause_point(&format!("payment:charged:{n}"));
                // The transaction ids as they come, while the budget has room for the write.
                let rest = charge_budget(deps.config(), attempt.parts.len() - n - 1);
                if n + 1 < attempt.parts.len()
                    && deadline.allows(rest + deps.config().dependency_timeout)
                    && !deps
                        .store()
                        .update_attempt(&attempt, AttemptState::Charging)
                        .await?
                {
                    return Err(taken_over(deps, &attempt).await);
                }
            }
            Err(Error::GatewayFailed) => {
                // Declined: nothing charged for this part; give back what the others took.
                refund_attempt(deps, &mut attempt, AttemptState::Charging).await;
                return Err(Error::GatewayFailed);
            }
            Err(error) => {
                // No answer: this part may or may not be charged. The attempt stays CHARGING;
                // the reconciler finds out by its idempotency key and settles it.
                tracing::warn!(attempt_id = %attempt.attempt_id, part = n, %error,
                    "charge outcome unknown; left to reconciliation");
                deps.metrics().left_to_reconciliation(false);
                return Err(Error::Unavailable("payment gateway"));
            }
        }
    }

    number_and_mark_charged(deps, &mut attempt).await?;
    if !deps
        .store()
        .update_attempt(&attempt, AttemptState::Charging)
        .await?
    {
        return Err(taken_over(deps, &attempt).await);
    }
    let order_lines = order.items.clone();
    commit_attempt(deps, &attempt, &order_lines).await
}

/// The reconciler moved the attempt on while this request still ran (it outlived its deadline).
/// If it is refunding, the charges this request made after the reconciler looked them up are
/// unknown to it: refund those here. If it is completing, leave everything to it.
async fn taken_over(deps: &impl RefundDeps, ours: &PaymentAttempt) -> Error {
    tracing::warn!(attempt_id = %ours.attempt_id,
        "the attempt was taken over by the reconciler; this request stops");
    let stored = match deps.store().get_attempt(&ours.attempt_id).await {
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
            let refund = deps.gateway().refund(pg_transaction_id, part.amount, &key);
            if let Err(error) = bounded(deps.config().gateway_timeout, refund).await {
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
        pickup_number: attempt.pickup_number(),
    };
    let stored = stored_of(&crate::http::success(200, &receipt));
    Ok((receipt, stored))
}

/// Commits a `CHARGED` attempt: the order paid, stock taken, the answer stored — or, when the
/// order can no longer be paid, every charge refunded. An unknown outcome leaves it `CHARGED`
/// for the reconciler (503).
pub(crate) async fn commit_attempt(
    deps: &impl RefundDeps,
    attempt: &PaymentAttempt,
    lines: &[crate::domain::OrderLine],
) -> Result<PaymentReceipt> {
    let (receipt, stored) = receipt_of(attempt)?;
    let answer = attempt.idempotency_key.as_ref().map(|_| stored);
    let completion = PaymentCompletion::of(attempt, lines, answer)?;
    match deps.store().complete_payment(&completion).await {
        Ok(()) => {
            crate::fault::pause_point("payment:committed");
            Ok(receipt)
        }
        // The fence held: the order was paid or cancelled meanwhile, or the stock ran out.
        Err(refused @ (Error::OutOfStock(_) | Error::NotFound(_) | Error::OrderStatusConflict)) => {
            let mut attempt = attempt.clone();
            refund_attempt(deps, &mut attempt, AttemptState::Charged).await;
            Err(refused)
        }
        Err(error) => {
            tracing::warn!(attempt_id = %attempt.attempt_id, %error,
                "payment commit not settled; left to reconciliation");
            deps.metrics().left_to_reconciliation(false);
            Err(error)
        }
    }
}

/// Every part charged: the attempt takes its pickup number (one atomic increment of the business
/// day's counter; a number taken by a payment that then fails is a gap, never a duplicate) and
/// becomes `CHARGED`. Only a payment that got a floor slot and was charged takes a number, so
/// refused payers leave no gaps. The number is in the attempt before its commit, so every rebuild
/// of the completing write (a re-send, the reconciler) gives the same one.
pub(crate) async fn number_and_mark_charged(
    deps: &(impl HasStore + HasClock + HasConfig),
    attempt: &mut PaymentAttempt,
) -> Result<()> {
    let now = deps.clock().now();
    if let Some(slot) = attempt.floor.as_mut()
        && slot.pickup_number.is_none()
    {
        let day = crate::domain::floor::business_day(now, deps.config().floor.timezone);
        slot.pickup_number = Some(deps.store().take_pickup_number(&day).await?);
        slot.business_day = Some(day);
    }
    attempt.mark_charged(now);
    Ok(())
}

/// A pending order older than the payment window can no longer be paid (400OR003), even before
/// the sweep has moved it to `EXPIRED`.
fn check_payment_window(deps: &(impl HasConfig + HasClock), order: &Order) -> Result<()> {
    if deps.clock().now() - order.created_at > deps.config().floor.payment_window {
        return Err(Error::PaymentWindowPassed);
    }
    Ok(())
}

/// A payment the floor refused (full, or the member at their limit): `Retry-After` is about
/// when one order is made, from the day's mean make time. Any other error as it is.
async fn with_floor_wait(deps: &(impl HasStore + HasClock + HasConfig), refused: Error) -> Error {
    if !matches!(refused, Error::ShopFull(_) | Error::TooManyOpenOrders(_)) {
        return refused;
    }
    let day = crate::domain::floor::business_day(deps.clock().now(), deps.config().floor.timezone);
    let seconds = match deps.store().floor_state(&day).await {
        Ok(state) => u32::try_from(state.mean_make_seconds()).unwrap_or(u32::MAX),
        Err(_) => u32::try_from(crate::domain::floor::DEFAULT_MAKE_SECONDS).unwrap_or(60),
    };
    match refused {
        Error::ShopFull(_) => Error::ShopFull(seconds),
        _ => Error::TooManyOpenOrders(seconds),
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
