//! Domain events. Each is written as an outbox record in the same atomic write as the change it
//! announces and published to EventBridge (source `cafe`) from the table's stream; `event_id` is
//! stable across redeliveries so consumers can drop duplicates.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const EVENT_SOURCE: &str = "cafe";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    MemberRegistered,
    MemberWithdrawn,
    MemberRestored,
    MemberExpired,
    OrderCreated,
    OrderCancelled,
    PaymentCompleted,
    PaymentRefunded,
    MemberRoleChanged,
    ItemCreated,
    ItemUpdated,
    ItemStockChanged,
    /// A fulfilment step: `PREPARING`, `READY` or `PICKED_UP` (the detail's `status`).
    OrderFulfilmentAdvanced,
    /// Staff opened or closed the shop (the detail's `open` and `message`).
    ShopStatusChanged,
    /// A pending order was not paid within the payment window.
    OrderExpired,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MemberRegistered => "MemberRegistered",
            EventType::MemberWithdrawn => "MemberWithdrawn",
            EventType::MemberRestored => "MemberRestored",
            EventType::MemberExpired => "MemberExpired",
            EventType::OrderCreated => "OrderCreated",
            EventType::OrderCancelled => "OrderCancelled",
            EventType::PaymentCompleted => "PaymentCompleted",
            EventType::PaymentRefunded => "PaymentRefunded",
            EventType::MemberRoleChanged => "MemberRoleChanged",
            EventType::ItemCreated => "ItemCreated",
            EventType::ItemUpdated => "ItemUpdated",
            EventType::ItemStockChanged => "ItemStockChanged",
            EventType::OrderFulfilmentAdvanced => "OrderFulfilmentAdvanced",
            EventType::ShopStatusChanged => "ShopStatusChanged",
            EventType::OrderExpired => "OrderExpired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    /// Stable id (ULID) for de-duplication by consumers.
    pub event_id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    /// Ids, status and time of the change.
    pub detail: Value,
}

impl DomainEvent {
    fn new(event_type: EventType, at: DateTime<Utc>, detail: Value) -> Self {
        Self {
            event_id: crate::ids::new_id(at),
            event_type,
            occurred_at: at,
            detail,
        }
    }

    pub fn member(event_type: EventType, member_id: &str, status: &str, at: DateTime<Utc>) -> Self {
        Self::new(
            event_type,
            at,
            json!({"memberId": member_id, "status": status, "at": crate::clock::rfc3339(at)}),
        )
    }

    /// A role granted: who, the new role, and the admin who granted it.
    pub fn role(member_id: &str, role: &str, granted_by: &str, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::MemberRoleChanged,
            at,
            json!({"memberId": member_id, "role": role, "grantedBy": granted_by,
                   "at": crate::clock::rfc3339(at)}),
        )
    }

    /// A staff edit of an item: its state after the change, who made it and (stock) why.
    pub fn item(
        event_type: EventType,
        item: &crate::domain::Item,
        staff_id: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            event_type,
            at,
            json!({"itemId": item.item_id, "name": item.name, "price": item.price,
                   "stock": item.stock, "active": item.active, "version": item.version,
                   "staffId": staff_id, "reason": reason, "at": crate::clock::rfc3339(at)}),
        )
    }

    /// The shop opened or closed by staff.
    pub fn shop(open: bool, message: Option<&str>, staff_id: &str, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::ShopStatusChanged,
            at,
            json!({"open": open, "message": message, "staffId": staff_id,
                   "at": crate::clock::rfc3339(at)}),
        )
    }

    pub fn order(
        event_type: EventType,
        order_id: &str,
        member_id: &str,
        status: &str,
        total_price: i64,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            event_type,
            at,
            json!({"orderId": order_id, "memberId": member_id, "status": status,
                   "totalPrice": total_price, "at": crate::clock::rfc3339(at)}),
        )
    }

    pub fn payment(
        event_type: EventType,
        order_id: &str,
        payment: &crate::domain::order::Payment,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            event_type,
            at,
            json!({"orderId": order_id, "paymentId": payment.payment_id,
                   "type": payment.payment_type, "amount": payment.amount,
                   "status": payment.status.as_str(),
                   "pgTransactionId": payment.pg_transaction_id,
                   "at": crate::clock::rfc3339(at)}),
        )
    }
}
