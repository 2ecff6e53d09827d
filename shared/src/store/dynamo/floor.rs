//! The floor (see `docs/floor.md`): three kinds of counter item, each changed inside the write it
//! belongs to.
//!
//! - `SHOP` / `FLOOR`: `open` (absent: open), `message`, `updatedAt`, `updatedBy` and
//!   `inProgress`, the paid orders not yet `READY` (with the attempts still paying). A payment's
//!   attempt reserves a slot in its own `TransactWriteItems` (`ADD inProgress 1` conditioned on
//!   the shop open and `inProgress < :max`), so the fence is the write, never a read.
//! - `SHOP#MEMBER#<memberId>` / `FLOOR`: `openOrders`, the member's share, reserved in the same
//!   transaction (`openOrders < :max`).
//! - `SHOP#DAY#<YYYY-MM-DD>` / `FLOOR`: the business day's `lastNumber` (an atomic counter:
//!   `UpdateItem ADD lastNumber 1` answering `UPDATED_NEW`), and `made` / `makeSeconds`, the
//!   make times of the orders made `READY` that day; removed by TTL a week later.
//!
//! A refund settling a payment's attempt, the step to `READY` and a cancellation give the slot
//! back (`ADD … -1`) in their own transactions.

use super::tx::Expr;
use super::{Attrs, DynamoStore, Reason, TxItems, attr_str, key, n, s, sdk_error, table};
use crate::domain::DomainEvent;
use crate::domain::OrderStatus;
use crate::domain::attempt::PaymentAttempt;
use crate::domain::floor::{FloorSlot, FloorState};
use crate::error::{Error, Result};
use crate::store::{FloorStore, ShopChange, SlotRelease};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use chrono::{Duration, NaiveDate};
use tracing::Instrument;

const FLOOR_SK: &str = "FLOOR";
const SHOP_PK: &str = "SHOP";
/// A day's counter outlives its day by this much (late reads of the day's make times).
const DAY_RETENTION: Duration = Duration::days(7);

fn shop_key() -> Attrs {
    key(SHOP_PK, FLOOR_SK)
}

fn member_key(member_id: &str) -> Attrs {
    key(format!("SHOP#MEMBER#{member_id}"), FLOOR_SK)
}

fn day_key(day: &str) -> Attrs {
    key(format!("SHOP#DAY#{day}"), FLOOR_SK)
}

/// Epoch seconds at which a day's counter may go.
fn day_expiry(day: &str) -> i64 {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| (d.and_utc() + DAY_RETENTION).timestamp())
        .unwrap_or_else(|| (chrono::Utc::now() + DAY_RETENTION).timestamp())
}

fn number_of(item: &Attrs, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Adds "the shop is open" to `tx` (a new order's write): a condition on the shop's item.
pub(crate) fn check_open(tx: &mut TxItems<'_>) -> Result<usize> {
    tx.check(
        shop_key(),
        "attribute_not_exists(#open) OR #open = :true",
        Expr::new()
            .name("#open", "open")
            .value(":true", AttributeValue::Bool(true)),
    )
}

/// The refusal of a new order by a closed shop, if the check at `index` failed.
pub(crate) fn closed(index: usize, reasons: &[Reason]) -> Option<Error> {
    let reason = reasons.get(index).filter(|r| r.failed)?;
    Some(Error::ShopClosed(
        reason
            .old
            .as_ref()
            .and_then(|o| attr_str(o, "message"))
            .map(str::to_owned),
    ))
}

/// The indexes of a reservation's two writes in its transaction.
pub(crate) struct Reservation {
    shop: usize,
    member: usize,
}

/// Adds the reservation of `slot` for `member_id` to `tx`: the shop's and the member's counts
/// up by one, each only if it stays within its limit (and the shop open).
pub(crate) fn reserve(
    tx: &mut TxItems<'_>,
    member_id: &str,
    slot: &FloorSlot,
) -> Result<Reservation> {
    let shop = tx.update(
        shop_key(),
        "ADD #inProgress :one",
        Some(
            "(attribute_not_exists(#open) OR #open = :true) \
             AND (attribute_not_exists(#inProgress) OR #inProgress < :max)",
        ),
        Expr::new()
            .name("#inProgress", "inProgress")
            .name("#open", "open")
            .value(":one", n(1))
            .value(":true", AttributeValue::Bool(true))
            .value(":max", n(slot.max_in_progress)),
    )?;
    let member = tx.update(
        member_key(member_id),
        "ADD #openOrders :one",
        Some("attribute_not_exists(#openOrders) OR #openOrders < :max"),
        Expr::new()
            .name("#openOrders", "openOrders")
            .value(":one", n(1))
            .value(":max", n(slot.max_open_per_member)),
    )?;
    Ok(Reservation { shop, member })
}

/// The refusal a failed reservation stands for, if it failed: closed (with the message), full,
/// or the member at their limit. `Retry-After` is filled in by the payment.
pub(crate) fn refusal(reservation: &Reservation, reasons: &[Reason]) -> Option<Error> {
    if let Some(reason) = reasons.get(reservation.shop).filter(|r| r.failed) {
        let old = reason.old.as_ref();
        let closed = old
            .and_then(|o| o.get("open"))
            .and_then(|v| v.as_bool().ok())
            .is_some_and(|open| !*open);
        return Some(if closed {
            Error::ShopClosed(old.and_then(|o| attr_str(o, "message")).map(str::to_owned))
        } else {
            Error::ShopFull(0)
        });
    }
    reasons
        .get(reservation.member)
        .filter(|r| r.failed)
        .map(|_| Error::TooManyOpenOrders(0))
}

/// Adds the release of a slot to `tx`: the shop's and the member's counts down by one and, on
/// `READY`, the make time added to its day.
pub(crate) fn release(tx: &mut TxItems<'_>, release: &SlotRelease) -> Result<()> {
    tx.update(
        shop_key(),
        "ADD #inProgress :minus",
        None,
        Expr::new()
            .name("#inProgress", "inProgress")
            .value(":minus", n(-1)),
    )?;
    tx.update(
        member_key(&release.member_id),
        "ADD #openOrders :minus",
        None,
        Expr::new()
            .name("#openOrders", "openOrders")
            .value(":minus", n(-1)),
    )?;
    if let Some((day, seconds)) = &release.made {
        tx.update(
            day_key(day),
            "SET #ttl = if_not_exists(#ttl, :ttl) ADD #made :one, #makeSeconds :seconds",
            None,
            Expr::new()
                .name("#ttl", table::TTL_ATTRIBUTE)
                .name("#made", "made")
                .name("#makeSeconds", "makeSeconds")
                .value(":ttl", n(day_expiry(day)))
                .value(":one", n(1))
                .value(":seconds", n(*seconds)),
        )?;
    }
    Ok(())
}

/// The release of a refunded payment's slot, if it reserved one.
pub(crate) fn release_of_attempt(attempt: &PaymentAttempt) -> Option<SlotRelease> {
    attempt.holds_slot().then(|| SlotRelease {
        member_id: attempt.member_id.clone(),
        made: None,
    })
}

/// `update` (a `SET …` expression, with or without a `REMOVE` clause) also setting `set`
/// (`#a = :a, …`).
pub(crate) fn with_set(update: &str, set: &str) -> String {
    match update.split_once(" REMOVE ") {
        Some((sets, removes)) => format!("{sets}, {set} REMOVE {removes}"),
        None => format!("{update}, {set}"),
    }
}

impl DynamoStore {
    /// How many orders the queue index holds in `status` (before `before`, if given): `Select
    /// COUNT` queries, a page (1 MB read) at a time.
    async fn count_queue(&self, status: OrderStatus, before: Option<&str>) -> Result<i64> {
        let mut total = 0i64;
        let mut start: Option<Attrs> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(table::GSI_FULFILMENT)
                .expression_attribute_names("#fpk", table::FULFILMENT_PK)
                .expression_attribute_values(":fpk", s(super::orders::fulfilment_pk(status)))
                .select(Select::Count)
                .set_exclusive_start_key(start.take());
            query = match before {
                Some(order_id) => query
                    .key_condition_expression("#fpk = :fpk AND #fsk < :before")
                    .expression_attribute_names("#fsk", table::FULFILMENT_SK)
                    .expression_attribute_values(":before", s(order_id)),
                None => query.key_condition_expression("#fpk = :fpk"),
            };
            let out = query
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "Query"))
                .await
                .map_err(sdk_error)?;
            total += i64::from(out.count);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }
}

#[async_trait]
impl FloorStore for DynamoStore {
    async fn take_pickup_number(&self, day: &str) -> Result<u32> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(day_key(day)))
            .update_expression("SET #ttl = if_not_exists(#ttl, :ttl) ADD #last :one")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_names("#last", "lastNumber")
            .expression_attribute_values(":ttl", n(day_expiry(day)))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "UpdateItem"))
            .await
            .map_err(sdk_error)?;
        let number = out
            .attributes
            .as_ref()
            .map(|a| number_of(a, "lastNumber"))
            .unwrap_or(0);
        u32::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::Internal("pickup counter answered no number".into()))
    }

    async fn floor_state(&self, day: &str) -> Result<FloorState> {
        let rows = self.batch_get(vec![shop_key(), day_key(day)]).await?;
        let mut state = FloorState {
            open: true,
            ..FloorState::default()
        };
        for row in rows {
            if attr_str(&row, table::PK) == Some(SHOP_PK) {
                state.open = row
                    .get("open")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(true);
                state.message = attr_str(&row, "message").map(str::to_owned);
                state.in_progress = number_of(&row, "inProgress");
                state.updated_at = attr_str(&row, "updatedAt")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
            } else {
                state.made = number_of(&row, "made");
                state.make_seconds = number_of(&row, "makeSeconds");
            }
        }
        Ok(state)
    }

    async fn set_shop(&self, change: &ShopChange, event: &DomainEvent) -> Result<()> {
        let expr = Expr::new()
            .name("#open", "open")
            .name("#message", "message")
            .name("#updatedAt", "updatedAt")
            .name("#updatedBy", "updatedBy")
            .value(":open", AttributeValue::Bool(change.open))
            .value(":at", s(crate::clock::rfc3339(change.at)))
            .value(":by", s(&change.staff_id));
        let (update, expr) = match &change.message {
            Some(message) => (
                "SET #open = :open, #message = :message, #updatedAt = :at, #updatedBy = :by",
                expr.value(":message", s(message)),
            ),
            None => (
                "SET #open = :open, #updatedAt = :at, #updatedBy = :by REMOVE #message",
                expr,
            ),
        };
        let mut tx = TxItems::new(self);
        tx.update(shop_key(), update, None, expr)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Internal("shop change cancelled".into())),
        }
    }

    async fn orders_ahead(&self, order_id: &str) -> Result<i64> {
        let preparing = self.count_queue(OrderStatus::Preparing, None).await?;
        let before = self
            .count_queue(OrderStatus::Completed, Some(order_id))
            .await?;
        Ok(preparing + before)
    }

    async fn open_orders_of(&self, member_id: &str) -> Result<i64> {
        let row = self
            .raw_item(&format!("SHOP#MEMBER#{member_id}"), FLOOR_SK)
            .await?;
        Ok(row.map(|r| number_of(&r, "openOrders")).unwrap_or(0))
    }
}
