//! Order use cases: place, read, list and cancel.
//!
//! Placing an order checks stock but takes none (stock is taken at payment, as in the original).
//! Cancelling a paid order runs under the same lock as paying it and refunds every payment before
//! the one atomic write that gives the stock back (see [`cancel_order`]).

use crate::clock::rfc3339;
use crate::deadline::Deadline;
use crate::deps::{HasClock, HasConfig, HasLock, HasStore};
use crate::domain::attempt::{AttemptState, RECONCILE_GRACE, cancel_refund};
use crate::domain::order::{RequestedLine, check_order_lines, price_order};
use crate::domain::{
    DomainEvent, EventType, Member, Order, OrderLine, OrderStatus, Payment, PaymentStatus,
};
use crate::error::{Error, Result};
use crate::http::Validate;
use crate::lock::{order_key, release_logged};
use crate::services::history::{HistoryRow, history_rows};
use crate::services::refunds::{RefundDeps, refund_attempt};
use crate::store::{CompletedCancellation, OrderStore, SlotRelease};
use chrono::DurationRound;
use serde::{Deserialize, Serialize};

/// `POST /order` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrderRequest {
    pub items: Vec<LineRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LineRequest {
    pub item_id: String,
    pub quantity: i64,
}

impl CreateOrderRequest {
    fn lines(&self) -> Vec<RequestedLine> {
        self.items
            .iter()
            .map(|l| RequestedLine {
                item_id: l.item_id.clone(),
                quantity: l.quantity,
            })
            .collect()
    }
}

impl Validate for CreateOrderRequest {
    fn validate(&self) -> Result<()> {
        check_order_lines(&self.lines())
    }
}

/// `POST /order` answer, and one entry of `GET /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    pub order_id: String,
    pub status: OrderStatus,
    pub total_price: i64,
    pub items: Vec<OrderLine>,
    /// Left out of the create answer, where there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<Payment>>,
    /// Once paid: the pickup number of its business day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
    pub created_at: String,
}

/// `GET /order/{orderId}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    pub order_id: String,
    pub status: OrderStatus,
    pub total_price: i64,
    pub items: Vec<OrderLine>,
    pub payments: Vec<Payment>,
    pub history: Vec<HistoryRow>,
    /// Once paid: the pickup number of its business day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
    /// While paid and not yet `READY`: its place in the queue and when it should be ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<OrderWait>,
    pub created_at: String,
}

/// Where a paid order stands on the floor (`docs/floor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderWait {
    /// Orders staff will make before this one: every one being prepared, and those paid orders
    /// not yet started that were placed before it (0 while it is being prepared).
    pub orders_ahead: i64,
    /// Whole minutes: its own make time and one per order ahead, each the day's mean.
    pub estimated_wait_minutes: i64,
    /// Now plus the estimated wait, to the minute.
    pub estimated_ready_at: String,
}

/// The wait of `order` while it is `COMPLETED` or `PREPARING` (see
/// [`crate::domain::floor::estimated_wait_minutes`]); `None` otherwise.
async fn order_wait(
    deps: &(impl HasStore + HasClock + HasConfig),
    order: &Order,
) -> Result<Option<OrderWait>> {
    let ahead = match order.status {
        OrderStatus::Completed => deps.store().orders_ahead(&order.order_id).await?,
        OrderStatus::Preparing => 0,
        _ => return Ok(None),
    };
    let now = deps.clock().now();
    let day = crate::domain::floor::business_day(now, deps.config().floor.timezone);
    let state = deps.store().floor_state(&day).await?;
    let minutes = crate::domain::floor::estimated_wait_minutes(ahead, state.mean_make_seconds());
    let ready = now + chrono::Duration::minutes(minutes);
    let ready = ready
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(ready);
    Ok(Some(OrderWait {
        orders_ahead: ahead,
        estimated_wait_minutes: minutes,
        estimated_ready_at: rfc3339(ready),
    }))
}

/// `GET /orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub orders: Vec<OrderSummary>,
    /// `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `DELETE /order/{orderId}/cancel` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledOrder {
    pub order_id: String,
    pub status: OrderStatus,
}

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// The validated query of `GET /orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl ListQuery {
    /// `limit` 1–100 (default 20), else 400CO000 `limit`. The cursor is checked by the store,
    /// which alone can read it; an empty one is refused here.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| Error::invalid("limit"))?,
        };
        let cursor = match cursor {
            Some("") => return Err(Error::invalid("cursor")),
            other => other.map(str::to_owned),
        };
        Ok(Self { limit, cursor })
    }
}

impl OrderSummary {
    fn of(order: &Order, with_payments: bool) -> Self {
        Self {
            order_id: order.order_id.clone(),
            status: order.status,
            total_price: order.total_price,
            items: order.items.clone(),
            payments: with_payments.then(|| order.payments.clone()),
            pickup_number: order.pickup_number,
            created_at: rfc3339(order.created_at),
        }
    }
}

/// The member's own order: an id that cannot exist or an unknown one → 404CO000, another
/// member's → 403CO000.
pub(crate) async fn load_own_order(
    store: &dyn OrderStore,
    order_id: &str,
    member: &Member,
) -> Result<Order> {
    if !crate::ids::is_well_formed(order_id) {
        return Err(Error::NotFound("order"));
    }
    let order = store
        .get_order(order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    order.check_owner(&member.member_id)?;
    Ok(order)
}

/// What cancelling uses: refunding's capabilities, the clock and the lock (the paid order is
/// cancelled under the same lock as paying it).
pub trait CancelDeps: RefundDeps + HasClock + HasLock {}

impl<T: RefundDeps + HasClock + HasLock + ?Sized> CancelDeps for T {}

/// Places a `PENDING_PAYMENT` order priced from the current items, for the member of a verified
/// token. The lines are checked first (400CO000); then the member and the items are read
/// together (one `BatchGetItem`): unknown or `END` member → 401CO000, not in `SERVICE` →
/// 403CO000; an unknown item → 404CO000; stock below a line's quantity → 400OR000.
pub async fn create_order(
    deps: &(impl HasStore + HasClock),
    caller: &(impl crate::domain::member::Caller + ?Sized),
    request: &CreateOrderRequest,
) -> Result<OrderSummary> {
    let member_id = caller.member_id();
    let lines = request.lines();
    check_order_lines(&lines)?;
    let ids: Vec<String> = lines.iter().map(|l| l.item_id.clone()).collect();
    let (member, items) = deps.store().get_member_and_items(member_id, &ids).await?;
    crate::domain::member::admit(member, caller)?.check_in_service()?;
    let (priced, total_price) = price_order(&lines, &items)?;
    let now = deps.clock().now();
    let order = Order {
        order_id: crate::ids::new_id(now),
        member_id: member_id.to_owned(),
        status: OrderStatus::PendingPayment,
        total_price,
        items: priced,
        payments: Vec::new(),
        created_at: now,
        updated_at: now,
        pickup_number: None,
        paid_at: None,
    };
    let event = DomainEvent::order(
        EventType::OrderCreated,
        &order.order_id,
        &order.member_id,
        order.status.as_str(),
        order.total_price,
        now,
    );
    deps.store().create_order(&order, &event).await?;
    Ok(OrderSummary::of(&order, false))
}

/// The member's own order with its payments and status timeline.
/// The order, its payments and its history come in one read (`get_order_with_history`); an
/// order in the making adds its wait (the queue counted, the day's make times read).
pub async fn get_order(
    deps: &(impl HasStore + HasClock + HasConfig),
    member: &Member,
    order_id: &str,
) -> Result<OrderDetail> {
    if !crate::ids::is_well_formed(order_id) {
        return Err(Error::NotFound("order"));
    }
    let (order, history) = deps
        .store()
        .get_order_with_history(order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    order.check_owner(&member.member_id)?;
    let wait = order_wait(deps, &order).await?;
    Ok(OrderDetail {
        order_id: order.order_id,
        status: order.status,
        total_price: order.total_price,
        items: order.items,
        payments: order.payments,
        history: history_rows(history),
        pickup_number: order.pickup_number,
        wait,
        created_at: rfc3339(order.created_at),
    })
}

/// The member's own orders, newest first, one page at a time.
pub async fn list_orders(
    deps: &impl HasStore,
    member: &Member,
    query: &ListQuery,
) -> Result<OrderList> {
    let page = deps
        .store()
        .list_orders(&member.member_id, query.limit, query.cursor.as_deref())
        .await?;
    Ok(OrderList {
        orders: page
            .orders
            .iter()
            .map(|o| OrderSummary::of(o, true))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Cancels the member's own order within the default budget (see [`cancel_order_within`]).
pub async fn cancel_order(
    deps: &impl CancelDeps,
    member: &Member,
    order_id: &str,
) -> Result<CancelledOrder> {
    let deadline = Deadline::after(crate::deadline::DEFAULT_BUDGET, deps.clock().now());
    cancel_order_within(deps, member, order_id, deadline).await
}

/// Cancels the member's own order. Any authenticated member may cancel their own order (a
/// withdrawn member keeps the right to a refund); already `CANCELLED` → 400OR001.
///
/// `PENDING_PAYMENT` is one conditional write: if a payment completes first, the write's
/// condition fails and the answer is 400OR001 (cancel again to refund it).
///
/// `COMPLETED` runs under the order's lock, re-reads the order, and in one atomic write gives the
/// stock back, marks the payments `CANCELED`, the order `CANCELLED` and writes a refund attempt
/// (`REFUNDING`) naming every payment; then it refunds each payment at the gateway and settles
/// the attempt `REFUNDED`. The money going back no longer depends on this request surviving: a
/// refund refused or unanswered, or a process killed after the write, leaves the attempt
/// `REFUNDING` and `payment-reconcile` refunds what is left (refunds are idempotent per
/// transaction). The answer is 200 as soon as the cancellation is written.
pub async fn cancel_order_within(
    deps: &impl CancelDeps,
    member: &Member,
    order_id: &str,
    deadline: Deadline,
) -> Result<CancelledOrder> {
    let order = load_own_order(deps.store(), order_id, member).await?;
    order.check_cancellable()?;
    let at = deps.clock().now();
    if order.status == OrderStatus::PendingPayment {
        let event = DomainEvent::order(
            EventType::OrderCancelled,
            &order.order_id,
            &order.member_id,
            OrderStatus::Cancelled.as_str(),
            order.total_price,
            at,
        );
        deps.store()
            .cancel_pending_order(&order.order_id, at, &event)
            .await?;
    } else {
        let lease = deps.lock().acquire(&[order_key(&order.order_id)]).await?;
        let outcome = cancel_completed_locked(deps, &order, deadline).await;
        release_logged(deps.lock(), &lease).await;
        outcome?;
    }
    Ok(CancelledOrder {
        order_id: order.order_id,
        status: OrderStatus::Cancelled,
    })
}

/// `order` as read before the lock, not again under it: the payments of a `COMPLETED` order
/// never change, and the cancelling write is conditioned on the order still being `COMPLETED`,
/// so a cancellation that finished while this one waited (or an order moved on to `PREPARING`)
/// makes it 400OR001 there, before anything is refunded.
async fn cancel_completed_locked(
    deps: &impl CancelDeps,
    order: &Order,
    deadline: Deadline,
) -> Result<()> {
    let paid: Vec<&Payment> = order
        .payments
        .iter()
        .filter(|p| p.status == PaymentStatus::Paid)
        .collect();
    let at = deps.clock().now();
    let mut events = vec![DomainEvent::order(
        EventType::OrderCancelled,
        &order.order_id,
        &order.member_id,
        OrderStatus::Cancelled.as_str(),
        order.total_price,
        at,
    )];
    for payment in &paid {
        let cancelled = Payment {
            status: PaymentStatus::Canceled,
            ..(*payment).clone()
        };
        events.push(DomainEvent::payment(
            EventType::PaymentRefunded,
            &order.order_id,
            &cancelled,
            at,
        ));
    }
    let refund = cancel_refund(
        crate::ids::new_id(at),
        order,
        deadline.wall() + RECONCILE_GRACE,
        at,
    );
    let cancellation = CompletedCancellation {
        order_id: order.order_id.clone(),
        lines: order.items.clone(),
        payments: paid
            .iter()
            .map(|p| Payment {
                status: PaymentStatus::Canceled,
                ..(*p).clone()
            })
            .collect(),
        at,
        events,
        refund: refund.clone(),
        release: SlotRelease::of(order, None),
    };
    deps.store().cancel_completed_order(&cancellation).await?;
    crate::fault::pause_point("cancel:committed");
    let mut refund = refund;
    if !refund_attempt(deps, &mut refund, AttemptState::Refunding).await {
        tracing::warn!(order_id = %order.order_id, attempt_id = %refund.attempt_id,
            "cancelled; the refund is left to reconciliation");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_limits_and_cursor() {
        assert_eq!(
            ListQuery::parse(None, None),
            Ok(ListQuery {
                limit: 20,
                cursor: None
            })
        );
        assert_eq!(ListQuery::parse(Some("1"), None).map(|q| q.limit), Ok(1));
        assert_eq!(
            ListQuery::parse(Some("100"), None).map(|q| q.limit),
            Ok(100)
        );
        for bad in ["0", "101", "-1", "abc", "1.5", "", " 5"] {
            assert_eq!(
                ListQuery::parse(Some(bad), None),
                Err(Error::invalid("limit")),
                "{bad}"
            );
        }
        assert_eq!(
            ListQuery::parse(None, Some("")),
            Err(Error::invalid("cursor"))
        );
    }
}
