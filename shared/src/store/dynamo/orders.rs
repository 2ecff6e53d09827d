//! Orders and payments. An order is `ORDER#<id>` / `ORDER` (with the `orders-by-member` keys);
//! its payments are `ORDER#<id>` / `PAYMENT#<paymentId>`, so one Query reads an order whole.
//! Paying and cancelling are single transactions conditional on the order's status and, for
//! paying, on every line's stock.

use super::attempts::{IN_STATE, attempt_item, in_state};
use super::idempotency::{ATTEMPT_ATTRIBUTE, answer_update, record_key};
use super::items::{ITEM_SK, item_pk};
use super::tx::Expr;
use super::written::{with_token, written_by};
use super::{
    Attrs, DynamoStore, Reason, TxItems, attr_str, key, n, order_pk, s, sdk_error, shape_error,
    table,
};
use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::domain::{
    DomainEvent, EntityKind, HistoryEntry, Order, OrderLine, OrderStatus, Payment, PaymentStatus,
};
use crate::error::{Error, Result};
use crate::store::{CompletedCancellation, OrderPage, OrderStore, PaymentCompletion, cursor};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};
use std::collections::BTreeMap;
use tracing::Instrument;

pub(crate) const ORDER_SK: &str = "ORDER";
/// Sorts after every `PAYMENT#<ulid>`; history rows (`HISTORY#…`) sort before `ORDER`.
const PAYMENTS_END: &str = "PAYMENT#\u{10FFFF}";
/// Orders of one page whose payments are read at the same time.
const PARALLEL_READS: usize = 8;

fn payment_sk(payment_id: &str) -> String {
    format!("PAYMENT#{payment_id}")
}

fn member_orders_pk(member_id: &str) -> String {
    format!("MEMBER#{member_id}")
}

/// A new order's row. Its `payments` copy starts empty: every order written since the copy
/// exists carries the attribute, so a page tells an order with no payments from one paid
/// before the copy (which lacks it, and has its partition read).
fn order_item(order: &Order) -> Result<Attrs> {
    let mut item: Attrs = to_item(order).map_err(shape_error)?;
    item.insert(table::PK.into(), s(order_pk(&order.order_id)));
    item.insert(table::SK.into(), s(ORDER_SK));
    item.insert(table::GSI1_PK.into(), s(member_orders_pk(&order.member_id)));
    item.insert(table::GSI1_SK.into(), s(order_pk(&order.order_id)));
    if order.status == OrderStatus::PendingPayment {
        // The expiry sweep's work list (`docs/floor.md`): the queue index's pending partition,
        // left when the order is paid (it moves to `FULFIL#COMPLETED`), cancelled or expired.
        item.insert(
            table::FULFILMENT_PK.into(),
            s(fulfilment_pk(OrderStatus::PendingPayment)),
        );
        item.insert(table::FULFILMENT_SK.into(), s(&order.order_id));
    }
    Ok(item)
}

fn payment_item(order_id: &str, payment: &Payment, position: usize) -> Result<Attrs> {
    let mut item: Attrs = to_item(payment).map_err(shape_error)?;
    item.insert(table::PK.into(), s(order_pk(order_id)));
    item.insert(table::SK.into(), s(payment_sk(&payment.payment_id)));
    // Payment ids made in the same millisecond do not sort in request order; this does.
    item.insert(
        "position".into(),
        n(i64::try_from(position).unwrap_or(i64::MAX)),
    );
    Ok(item)
}

/// Quantities per item: one write per item even if a caller repeated one.
fn quantities(lines: &[OrderLine]) -> BTreeMap<&str, i64> {
    let mut by_item = BTreeMap::new();
    for line in lines {
        *by_item.entry(line.item_id.as_str()).or_insert(0) += line.quantity;
    }
    by_item
}

/// The position after the last order of a page of the expiry sweep.
#[derive(Serialize, Deserialize)]
struct PendingCursor {
    after: String,
}

/// The position after the last order of a page, bound to the member it was issued for.
#[derive(Serialize, Deserialize)]
struct OrderCursor {
    member: String,
    before: String,
}

/// Assembles an order from the items of its partition (order row first, payments after).
fn assemble(items: Vec<Attrs>) -> Result<Option<Order>> {
    let mut order: Option<Order> = None;
    let mut payments: Vec<(i64, Payment)> = Vec::new();
    for item in items {
        match attr_str(&item, table::SK) {
            Some(ORDER_SK) => order = Some(from_item(item).map_err(shape_error)?),
            Some(sk) if sk.starts_with("PAYMENT#") => {
                let position = item
                    .get("position")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(i64::MAX);
                payments.push((position, from_item(item).map_err(shape_error)?));
            }
            _ => {}
        }
    }
    payments.sort_by_key(|(position, _)| *position);
    Ok(order.map(|mut order| {
        order.payments = payments.into_iter().map(|(_, p)| p).collect();
        order
    }))
}

impl DynamoStore {
    /// The order row and its payments: one strongly consistent Query.
    async fn read_order(&self, order_id: &str) -> Result<Option<Order>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_names("#sk", table::SK)
            .expression_attribute_values(":pk", s(order_pk(order_id)))
            .expression_attribute_values(":from", s(ORDER_SK))
            .expression_attribute_values(":to", s(PAYMENTS_END))
            .consistent_read(true)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        assemble(out.items.unwrap_or_default())
    }

    /// Attaches payments to the orders of a page whose row has no copy of them (`copied` is
    /// false): orders written before the copy existed, unless still pending (no payments yet).
    async fn with_payments(&self, orders: Vec<Order>, copied: Vec<bool>) -> Result<Vec<Order>> {
        let mut result = orders;
        let mut reads = tokio::task::JoinSet::new();
        let mut next = 0;
        let mut running = 0;
        loop {
            while running < PARALLEL_READS && next < result.len() {
                if result[next].status != OrderStatus::PendingPayment && !copied[next] {
                    let store = self.clone();
                    let order_id = result[next].order_id.clone();
                    let index = next;
                    reads.spawn(async move { (index, store.read_order(&order_id).await) });
                    running += 1;
                }
                next += 1;
            }
            let Some(joined) = reads.join_next().await else {
                return Ok(result);
            };
            running -= 1;
            let (index, read) =
                joined.map_err(|e| Error::Internal(format!("payment read task: {e}")))?;
            if let Some(order) = read? {
                result[index].payments = order.payments;
            }
        }
    }
}

/// 404 for a missing order row, else 400OR001: the status did not allow the change.
pub(crate) fn order_condition_error(reason: &Reason) -> Error {
    if reason.old.is_none() {
        Error::NotFound("order")
    } else {
        Error::OrderStatusConflict
    }
}

pub(crate) fn status_expr(from: OrderStatus, to: OrderStatus, at: DateTime<Utc>) -> Result<Expr> {
    Ok(Expr::new()
        .name("#pk", table::PK)
        .name("#status", "status")
        .name("#updatedAt", "updatedAt")
        .value(":from", s(from.as_str()))
        .value(":to", s(to.as_str()))
        .value(":at", to_attribute_value(at).map_err(shape_error)?))
}

/// A transition into a fulfilment status: the order enters (or moves within) the queue.
pub(crate) const ORDER_INTO_FULFILMENT: &str =
    "SET #status = :to, #updatedAt = :at, #fpk = :fpk, #fsk = :fsk";
/// A transition out of the fulfilment statuses: the order leaves the queue.
pub(crate) const ORDER_OUT_OF_FULFILMENT: &str =
    "SET #status = :to, #updatedAt = :at REMOVE #fpk, #fsk";

/// The fulfilment queue's partition of `status`.
pub(crate) fn fulfilment_pk(status: OrderStatus) -> String {
    format!("FULFIL#{}", status.as_str())
}

/// `update` (a `SET …` expression, with or without a `REMOVE` clause) also setting the order
/// row's copy of its payments to `payments`: the payment rows stay the record (history, staff,
/// `GET /order`), the copy lets a page of `GET /orders` come whole from the index `Query`.
fn with_payments_copy(update: &str, expr: Expr, payments: &[Payment]) -> Result<(String, Expr)> {
    let set = ", #payments = :payments";
    let update = match update.split_once(" REMOVE ") {
        Some((sets, removes)) => format!("{sets}{set} REMOVE {removes}"),
        None => format!("{update}{set}"),
    };
    let copy = to_attribute_value(payments).map_err(shape_error)?;
    Ok((
        update,
        expr.name("#payments", "payments").value(":payments", copy),
    ))
}

/// [`status_expr`] for a transition that enters or leaves the fulfilment queue.
pub(crate) fn fulfilment_expr(
    order_id: &str,
    from: OrderStatus,
    to: OrderStatus,
    at: DateTime<Utc>,
) -> Result<(&'static str, Expr)> {
    let expr = status_expr(from, to, at)?
        .name("#fpk", table::FULFILMENT_PK)
        .name("#fsk", table::FULFILMENT_SK);
    if to.is_in_fulfilment() {
        Ok((
            ORDER_INTO_FULFILMENT,
            expr.value(":fpk", s(fulfilment_pk(to)))
                .value(":fsk", s(order_id)),
        ))
    } else {
        Ok((ORDER_OUT_OF_FULFILMENT, expr))
    }
}
pub(crate) const ORDER_IN_STATUS: &str = "attribute_exists(#pk) AND #status = :from";

#[async_trait]
impl OrderStore for DynamoStore {
    async fn create_order(&self, order: &Order, event: &DomainEvent) -> Result<()> {
        let mut tx = TxItems::new(self);
        tx.put_new(order_item(order)?)?;
        tx.history(
            EntityKind::Order,
            &order.order_id,
            order.status.as_str(),
            order.created_at,
        )?;
        tx.outbox(std::slice::from_ref(event))?;
        // While the shop is closed no order is taken (the check is part of the write).
        let open = super::floor::check_open(&mut tx)?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.get(open).is_some_and(|r| r.failed) => {
                Err(super::floor::closed(open, &reasons).unwrap_or(Error::ShopClosed(None)))
            }
            // The order row is there already: ours, if a retry of our own send (after a lost
            // answer) found it — same member, same instant. Anything else is a collision.
            Err(reasons) if reasons.first().is_some_and(|r| r.failed) => {
                let ours = reasons
                    .first()
                    .and_then(|r| r.old.as_ref())
                    .is_some_and(|old| {
                        attr_str(old, "memberId") == Some(order.member_id.as_str())
                            && from_item::<Order>(old.clone())
                                .is_ok_and(|stored| stored.created_at == order.created_at)
                    });
                if ours {
                    Ok(())
                } else {
                    Err(Error::Internal("order id collision".into()))
                }
            }
            Err(_) => Err(Error::Internal("order creation cancelled".into())),
        }
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<Order>> {
        self.read_order(order_id).await
    }

    async fn list_orders(
        &self,
        member_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let start = match cursor {
            Some(c) => {
                let position: OrderCursor = cursor::decode(c)?;
                if position.member != member_id || !crate::ids::is_well_formed(&position.before) {
                    return Err(Error::invalid("cursor"));
                }
                let mut start = key(order_pk(&position.before), ORDER_SK);
                start.insert(table::GSI1_PK.into(), s(member_orders_pk(member_id)));
                start.insert(table::GSI1_SK.into(), s(order_pk(&position.before)));
                Some(start)
            }
            None => None,
        };
        let limit = limit.clamp(1, 1000);
        // One more than asked: a cursor is given only when another page really exists.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::GSI_ORDERS_BY_MEMBER)
            .key_condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", table::GSI1_PK)
            .expression_attribute_values(":gpk", s(member_orders_pk(member_id)))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        let more_beyond = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let rows = out.items.unwrap_or_default();
        let mut copied: Vec<bool> = rows
            .iter()
            .map(|row| row.contains_key("payments"))
            .collect();
        let mut orders: Vec<Order> = rows
            .into_iter()
            .map(|item| from_item(item).map_err(shape_error))
            .collect::<Result<_>>()?;
        let has_next = orders.len() > limit || (more_beyond && orders.len() == limit);
        orders.truncate(limit);
        copied.truncate(limit);
        let next_cursor = match orders.last() {
            Some(last) if has_next => Some(cursor::encode(&OrderCursor {
                member: member_id.to_owned(),
                before: last.order_id.clone(),
            })?),
            _ => None,
        };
        Ok(OrderPage {
            orders: self.with_payments(orders, copied).await?,
            next_cursor,
        })
    }

    async fn order_history(&self, order_id: &str) -> Result<Vec<HistoryEntry>> {
        self.history(EntityKind::Order, order_id).await
    }

    async fn get_order_with_history(
        &self,
        order_id: &str,
    ) -> Result<Option<(Order, Vec<HistoryEntry>)>> {
        let (history, rows): (Vec<Attrs>, Vec<Attrs>) = self
            .raw_partition(&order_pk(order_id))
            .await?
            .into_iter()
            .partition(super::is_history_row);
        let history = history
            .into_iter()
            .map(super::history_entry)
            .collect::<Result<Vec<_>>>()?;
        Ok(assemble(rows)?.map(|order| (order, history)))
    }

    async fn complete_payment(&self, completion: &PaymentCompletion) -> Result<()> {
        let order_id = &completion.order_id;
        let attempt = &completion.attempt;
        let mut tx = TxItems::new(self);
        // Paid: the order joins the fulfilment queue in the same write.
        let (update, expr) = fulfilment_expr(
            order_id,
            OrderStatus::PendingPayment,
            OrderStatus::Completed,
            completion.at,
        )?;
        let (update, expr) = with_payments_copy(update, expr, &completion.payments)?;
        // Paid at the commit instant, with the attempt's pickup number (if it took one).
        let (update, expr) = match completion.pickup_number {
            Some(number) => (
                super::floor::with_set(&update, "#pickupNumber = :pickupNumber, #paidAt = :at"),
                expr.name("#pickupNumber", "pickupNumber")
                    .name("#paidAt", "paidAt")
                    .value(":pickupNumber", n(i64::from(number))),
            ),
            None => (
                super::floor::with_set(&update, "#paidAt = :at"),
                expr.name("#paidAt", "paidAt"),
            ),
        };
        tx.update(
            key(order_pk(order_id), ORDER_SK),
            &update,
            Some(ORDER_IN_STATUS),
            expr,
        )?;
        let mut line_writes = Vec::new();
        for (item_id, quantity) in quantities(&completion.lines) {
            let index = tx.update(
                key(item_pk(item_id), ITEM_SK),
                "SET #stock = #stock - :qty",
                Some("attribute_exists(#pk) AND #stock >= :qty"),
                Expr::new()
                    .name("#pk", table::PK)
                    .name("#stock", "stock")
                    .value(":qty", n(quantity)),
            )?;
            line_writes.push((index, item_id));
        }
        for (position, payment) in completion.payments.iter().enumerate() {
            tx.put_new(payment_item(order_id, payment, position)?)?;
        }
        // Every row derived from the attempt: a re-send is the identical transaction.
        tx.history_with_sequence(
            EntityKind::Order,
            order_id,
            "COMPLETED",
            completion.at,
            &attempt.history_sequence(0),
        )?;
        for (n, payment) in completion.payments.iter().enumerate() {
            tx.history_with_sequence(
                EntityKind::Payment,
                &payment.payment_id,
                PaymentStatus::Paid.as_str(),
                completion.at,
                &attempt.history_sequence(n + 1),
            )?;
        }
        tx.outbox(&completion.events)?;
        let completed = PaymentAttempt {
            state: AttemptState::Completed,
            ..attempt.clone()
        };
        // Derived from the attempt, as everything here: the reconciler's rebuilt commit is the
        // same write.
        let commit_token = format!("commit:{}", attempt.commit_token());
        let attempt_write = tx.put_if(
            with_token(attempt_item(&completed)?, &commit_token),
            IN_STATE,
            in_state(AttemptState::Charged),
        )?;
        if let (Some(key_), Some(answer)) = (&attempt.idempotency_key, &completion.answer) {
            // The answer for the client's retry under the same key, in the same write. A record
            // gone (expired) is written anew; one linked to another attempt cannot exist.
            let (update, expr) = answer_update(answer, completion.at);
            tx.update(
                record_key(&attempt.member_id, key_),
                update,
                Some("attribute_not_exists(#pk) OR #attempt = :attempt"),
                expr.name("#pk", table::PK)
                    .name("#attempt", ATTEMPT_ATTRIBUTE)
                    .value(":attempt", s(&attempt.attempt_id)),
            )?;
        }
        let reasons = match tx.commit_idempotent(attempt.commit_token()).await? {
            Ok(()) => return Ok(()),
            Err(reasons) => reasons,
        };
        // The attempt already COMPLETED by this commit: it went through and this was its
        // re-send (moto ignores the token; DynamoDB after its 10-minute window does too).
        let attempt_reason = reasons.get(attempt_write);
        if attempt_reason.is_some_and(|r| r.failed)
            && written_by(attempt_reason.and_then(|r| r.old.as_ref()), &commit_token)
        {
            return Ok(());
        }
        // Same precedence as the in-memory store: the order's status first, then lines in order.
        if let Some(reason) = reasons.first().filter(|r| r.failed) {
            return Err(order_condition_error(reason));
        }
        for (index, item_id) in line_writes {
            if let Some(reason) = reasons.get(index).filter(|r| r.failed) {
                return Err(if reason.old.is_none() {
                    Error::NotFound("item")
                } else {
                    Error::OutOfStock(item_id.to_owned())
                });
            }
        }
        if attempt_reason.is_some_and(|r| r.failed) {
            // The reconciler moved the attempt on (it is refunding): this request lost.
            return Err(Error::Unavailable("payment settlement"));
        }
        Err(Error::Internal("payment completion cancelled".into()))
    }

    async fn pending_orders_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let partition = fulfilment_pk(OrderStatus::PendingPayment);
        let start = match cursor {
            Some(c) => {
                let position: PendingCursor = cursor::decode(c)?;
                if !crate::ids::is_well_formed(&position.after) {
                    return Err(Error::invalid("cursor"));
                }
                let mut start = key(order_pk(&position.after), ORDER_SK);
                start.insert(table::FULFILMENT_PK.into(), s(&partition));
                start.insert(table::FULFILMENT_SK.into(), s(&position.after));
                Some(start)
            }
            None => None,
        };
        // Order ids are ULIDs: every id made before `before` sorts below the first one of it.
        let millis = u64::try_from(before.timestamp_millis()).unwrap_or(0);
        let bound = ulid::Ulid::from_parts(millis, 0).to_string();
        let limit = limit.clamp(1, 1000);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::GSI_FULFILMENT)
            .key_condition_expression("#fpk = :fpk AND #fsk < :bound")
            .expression_attribute_names("#fpk", table::FULFILMENT_PK)
            .expression_attribute_names("#fsk", table::FULFILMENT_SK)
            .expression_attribute_values(":fpk", s(&partition))
            .expression_attribute_values(":bound", s(bound))
            .scan_index_forward(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let rows = out.items.unwrap_or_default();
        let last = rows
            .last()
            .and_then(|row| attr_str(row, table::FULFILMENT_SK))
            .map(str::to_owned);
        let orders: Vec<Order> = rows
            .into_iter()
            // The index is eventually consistent: a row that moved on since is left out.
            .filter(|row| attr_str(row, "status") == Some(OrderStatus::PendingPayment.as_str()))
            .map(|row| from_item(row).map_err(shape_error))
            .collect::<Result<_>>()?;
        let next_cursor = match last {
            Some(after) if more => Some(cursor::encode(&PendingCursor { after })?),
            _ => None,
        };
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }

    async fn expire_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool> {
        let (update, expr) = fulfilment_expr(
            order_id,
            OrderStatus::PendingPayment,
            OrderStatus::Expired,
            at,
        )?;
        let mut tx = TxItems::new(self);
        tx.update(
            key(order_pk(order_id), ORDER_SK),
            update,
            Some(ORDER_IN_STATUS),
            expr,
        )?;
        tx.history(EntityKind::Order, order_id, "EXPIRED", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(true),
            // Paid, cancelled or gone meanwhile: nothing to expire.
            Err(reasons) if reasons.first().is_some_and(|r| r.failed) => Ok(false),
            Err(_) => Err(Error::Internal("order expiry cancelled".into())),
        }
    }

    async fn cancel_pending_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        let mut tx = TxItems::new(self);
        // Cancelled: the order leaves the expiry sweep's list.
        let (update, expr) = fulfilment_expr(
            order_id,
            OrderStatus::PendingPayment,
            OrderStatus::Cancelled,
            at,
        )?;
        tx.update(
            key(order_pk(order_id), ORDER_SK),
            update,
            Some(ORDER_IN_STATUS),
            expr,
        )?;
        tx.history(EntityKind::Order, order_id, "CANCELLED", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => match reasons.first().filter(|r| r.failed) {
                Some(reason) => Err(order_condition_error(reason)),
                None => Err(Error::Internal("order cancellation cancelled".into())),
            },
        }
    }

    async fn cancel_completed_order(&self, cancellation: &CompletedCancellation) -> Result<()> {
        let order_id = &cancellation.order_id;
        let mut tx = TxItems::new(self);
        // Cancelled before preparing: the order leaves the fulfilment queue.
        let (update, expr) = fulfilment_expr(
            order_id,
            OrderStatus::Completed,
            OrderStatus::Cancelled,
            cancellation.at,
        )?;
        let (update, expr) = with_payments_copy(update, expr, &cancellation.payments)?;
        tx.update(
            key(order_pk(order_id), ORDER_SK),
            &update,
            Some(ORDER_IN_STATUS),
            expr,
        )?;
        for (item_id, quantity) in quantities(&cancellation.lines) {
            tx.update(
                key(item_pk(item_id), ITEM_SK),
                "SET #stock = #stock + :qty",
                Some("attribute_exists(#pk)"),
                Expr::new()
                    .name("#pk", table::PK)
                    .name("#stock", "stock")
                    .value(":qty", n(quantity)),
            )?;
        }
        for payment in &cancellation.payments {
            tx.update(
                key(order_pk(order_id), payment_sk(&payment.payment_id)),
                "SET #status = :canceled",
                Some("attribute_exists(#pk)"),
                Expr::new()
                    .name("#pk", table::PK)
                    .name("#status", "status")
                    .value(":canceled", s(PaymentStatus::Canceled.as_str())),
            )?;
        }
        tx.history(EntityKind::Order, order_id, "CANCELLED", cancellation.at)?;
        for payment in &cancellation.payments {
            tx.history(
                EntityKind::Payment,
                &payment.payment_id,
                "CANCELED",
                cancellation.at,
            )?;
        }
        tx.outbox(&cancellation.events)?;
        // The refund the cancellation owes, durable before any money moves.
        tx.put_new(attempt_item(&cancellation.refund)?)?;
        if let Some(release) = &cancellation.release {
            super::floor::release(&mut tx, release)?;
        }
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => match reasons.first().filter(|r| r.failed) {
                Some(reason) => Err(order_condition_error(reason)),
                None => Err(Error::Internal(
                    "cancellation refers to an item or payment that does not exist".into(),
                )),
            },
        }
    }
}
