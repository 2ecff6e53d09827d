//! The staff side on the single table: roles on the member's profile row, catalogue edits on the
//! item row (plus its `CATALOG` entry), fulfilment steps on the order row and its place in the
//! sparse `orders-by-fulfilment` index. Each is one transaction with its history and outbox rows.

use super::items::{ITEM_SK, item_pk, item_row};
use super::members::PROFILE;
use super::orders::{
    ORDER_IN_STATUS, ORDER_SK, fulfilment_expr, fulfilment_pk, order_condition_error,
};
use super::tx::Expr;
use super::{
    DynamoStore, Reason, TxItems, attr_str, key, member_pk, n, order_pk, s, sdk_error, shape_error,
    table,
};
use crate::domain::item::StockMode;
use crate::domain::{DomainEvent, EntityKind, Item, MemberStatus, Order, OrderStatus, Role};
use crate::error::{Error, Result};
use crate::store::{OrderPage, SlotRelease, StaffStore, StockChange, cursor};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use tracing::Instrument;

#[derive(Serialize, Deserialize)]
struct FulfilmentCursor {
    /// The status the cursor was issued for: another status's cursor is refused.
    status: OrderStatus,
    after: String,
}

/// Why a conditional item write failed: gone, another edit first, or (stock) below zero.
fn item_condition_error(reason: Option<&Reason>, expected_version: u64, item_id: &str) -> Error {
    match reason.and_then(|r| r.old.as_ref()) {
        None => Error::NotFound("item"),
        Some(old) => {
            let version = from_item::<Item>(old.clone()).map(|item| item.version);
            if version.is_ok_and(|v| v == expected_version) {
                Error::OutOfStock(item_id.to_owned())
            } else {
                Error::VersionConflict
            }
        }
    }
}

fn version_expr(expected: u64) -> Expr {
    Expr::new()
        .name("#pk", table::PK)
        .name("#version", "version")
        .value(":expected", n(expected as i64))
        .value(":next", n(expected as i64 + 1))
}

/// Rows written before items had a version hold none: they count as version 0.
const VERSION_IS: &str = "attribute_exists(#pk) AND (#version = :expected OR (attribute_not_exists(#version) AND :expected = :zero))";

#[async_trait]
impl StaffStore for DynamoStore {
    async fn set_member_role(
        &self,
        member_id: &str,
        role: Role,
        _at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        let mut tx = TxItems::new(self);
        tx.update(
            key(member_pk(member_id), PROFILE),
            "SET #role = :role ADD #sv :one",
            Some("attribute_exists(#pk) AND #status = :service"),
            Expr::new()
                .name("#pk", table::PK)
                .name("#sv", super::members::SESSION_VERSION)
                .value(":one", super::n(1))
                .name("#role", "role")
                .name("#status", "status")
                .value(":role", s(role.as_str()))
                .value(":service", s(MemberStatus::Service.as_str())),
        )?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => match reasons.first().filter(|r| r.failed) {
                Some(reason) if reason.old.is_none() => Err(Error::NotFound("member")),
                Some(_) => Err(Error::NotInService),
                None => Err(Error::Internal("role change cancelled".into())),
            },
        }
    }

    async fn create_item(&self, item: &Item, at: DateTime<Utc>, event: &DomainEvent) -> Result<()> {
        let mut tx = TxItems::new(self);
        tx.put_new(item_row(item)?)?;
        tx.history(EntityKind::Item, &item.item_id, "CREATED", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Internal("item creation cancelled".into())),
        }
    }

    async fn update_item(
        &self,
        item: &Item,
        history: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        let expected = item.version.checked_sub(1).ok_or(Error::VersionConflict)?;
        let mut tx = TxItems::new(self);
        tx.update(
            key(item_pk(&item.item_id), ITEM_SK),
            "SET #name = :name, #price = :price, #active = :active, #version = :next",
            Some(VERSION_IS),
            version_expr(expected)
                .name("#name", "name")
                .name("#price", "price")
                .name("#active", "active")
                .value(":name", s(&item.name))
                .value(":price", n(item.price))
                .value(
                    ":active",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(item.active),
                )
                .value(":zero", n(0)),
        )?;
        tx.history(EntityKind::Item, &item.item_id, history, at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => Err(match reasons.first().filter(|r| r.failed) {
                // The item's price or name never fails on stock: any live row is a version race.
                Some(reason) if reason.old.is_some() => Error::VersionConflict,
                Some(_) => Error::NotFound("item"),
                None => Error::Internal("item update cancelled".into()),
            }),
        }
    }

    async fn change_stock(&self, change: &StockChange) -> Result<()> {
        let expr = version_expr(change.expected_version)
            .name("#stock", "stock")
            .value(":quantity", n(change.quantity))
            .value(":zero", n(0));
        let (update, condition, expr) = match change.mode {
            StockMode::Set => (
                "SET #stock = :quantity, #version = :next",
                VERSION_IS.to_owned(),
                expr,
            ),
            StockMode::Add if change.quantity < 0 => (
                "SET #stock = #stock + :quantity, #version = :next",
                format!("{VERSION_IS} AND #stock >= :taken"),
                expr.value(":taken", n(-change.quantity)),
            ),
            StockMode::Add => (
                "SET #stock = #stock + :quantity, #version = :next",
                VERSION_IS.to_owned(),
                expr,
            ),
        };
        let mut tx = TxItems::new(self);
        tx.update(
            key(item_pk(&change.item_id), ITEM_SK),
            update,
            Some(&condition),
            expr,
        )?;
        tx.history(
            EntityKind::Item,
            &change.item_id,
            &change.history,
            change.at,
        )?;
        tx.outbox(std::slice::from_ref(&change.event))?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => match reasons.first().filter(|r| r.failed) {
                Some(reason) => Err(item_condition_error(
                    Some(reason),
                    change.expected_version,
                    &change.item_id,
                )),
                None => Err(Error::Internal("stock change cancelled".into())),
            },
        }
    }

    async fn advance_order(
        &self,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
        event: &DomainEvent,
        release: Option<&SlotRelease>,
    ) -> Result<()> {
        let (update, expr) = fulfilment_expr(order_id, from, to, at)?;
        let mut tx = TxItems::new(self);
        tx.update(
            key(order_pk(order_id), ORDER_SK),
            update,
            Some(ORDER_IN_STATUS),
            expr,
        )?;
        tx.history(EntityKind::Order, order_id, to.as_str(), at)?;
        tx.outbox(std::slice::from_ref(event))?;
        if let Some(release) = release {
            super::floor::release(&mut tx, release)?;
        }
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) => match reasons.first().filter(|r| r.failed) {
                Some(reason) => Err(order_condition_error(reason)),
                None => Err(Error::Internal("fulfilment step cancelled".into())),
            },
        }
    }

    async fn fulfilment_orders(
        &self,
        status: OrderStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let start = match cursor {
            Some(c) => {
                let position: FulfilmentCursor = cursor::decode(c)?;
                if position.status != status || !crate::ids::is_well_formed(&position.after) {
                    return Err(Error::invalid("cursor"));
                }
                let mut start = key(order_pk(&position.after), ORDER_SK);
                start.insert(table::FULFILMENT_PK.into(), s(fulfilment_pk(status)));
                start.insert(table::FULFILMENT_SK.into(), s(&position.after));
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
            .index_name(table::GSI_FULFILMENT)
            .key_condition_expression("#fpk = :fpk")
            .expression_attribute_names("#fpk", table::FULFILMENT_PK)
            .expression_attribute_values(":fpk", s(fulfilment_pk(status)))
            .scan_index_forward(true)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        let mut orders: Vec<Order> = out
            .items
            .unwrap_or_default()
            .into_iter()
            // The index is eventually consistent: a row that moved on since is left out.
            .filter(|row| attr_str(row, "status") == Some(status.as_str()))
            .map(|row| from_item(row).map_err(shape_error))
            .collect::<Result<_>>()?;
        let more_beyond = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let has_next = orders.len() > limit || (more_beyond && orders.len() == limit);
        orders.truncate(limit);
        let next_cursor = match orders.last() {
            Some(last) if has_next => Some(cursor::encode(&FulfilmentCursor {
                status,
                after: last.order_id.clone(),
            })?),
            _ => None,
        };
        Ok(OrderPage {
            orders,
            next_cursor,
        })
    }
}
