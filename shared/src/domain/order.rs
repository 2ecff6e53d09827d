//! Orders and payments: PENDING_PAYMENT → COMPLETED → CANCELLED, PENDING_PAYMENT → CANCELLED;
//! payments PAID → CANCELED.

use crate::domain::item::Item;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_ORDER_LINES: usize = 20;
pub const MAX_LINE_QUANTITY: i64 = 100;
pub const MAX_PAYMENT_PARTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    /// Paid. From here staff fulfil it: `PREPARING` → `READY` → `PICKED_UP`.
    Completed,
    Preparing,
    Ready,
    PickedUp,
    Cancelled,
    /// Not paid within the payment window (`ORDER_PAYMENT_WINDOW`); moved here by the
    /// `expire-orders` sweep (`docs/floor.md`).
    Expired,
}

impl OrderStatus {
    /// The status's place in the life cycle (the live channel's `version`): a status never goes
    /// back, so a larger number is newer. `CANCELLED` and `EXPIRED` both end it (5).
    pub fn progress(self) -> u32 {
        match self {
            OrderStatus::PendingPayment => 0,
            OrderStatus::Completed => 1,
            OrderStatus::Preparing => 2,
            OrderStatus::Ready => 3,
            OrderStatus::PickedUp => 4,
            OrderStatus::Cancelled | OrderStatus::Expired => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "PENDING_PAYMENT",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Preparing => "PREPARING",
            OrderStatus::Ready => "READY",
            OrderStatus::PickedUp => "PICKED_UP",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Expired => "EXPIRED",
        }
    }

    /// Parses a status name exactly as [`OrderStatus::as_str`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        [
            OrderStatus::PendingPayment,
            OrderStatus::Completed,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::PickedUp,
            OrderStatus::Cancelled,
            OrderStatus::Expired,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// The fulfilment step before `self`: `PREPARING` comes from `COMPLETED`, `READY` from
    /// `PREPARING`, `PICKED_UP` from `READY`; anything else is no fulfilment step.
    pub fn fulfilment_predecessor(self) -> Option<Self> {
        match self {
            OrderStatus::Preparing => Some(OrderStatus::Completed),
            OrderStatus::Ready => Some(OrderStatus::Preparing),
            OrderStatus::PickedUp => Some(OrderStatus::Ready),
            _ => None,
        }
    }

    /// The statuses staff work through (`GET /admin/orders?status=`): paid and not yet picked up.
    pub fn is_in_fulfilment(self) -> bool {
        matches!(
            self,
            OrderStatus::Completed | OrderStatus::Preparing | OrderStatus::Ready
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentType {
    Card,
    Point,
    NaverPay,
    KakaoPay,
    BankTransfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Paid,
    Canceled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Paid => "PAID",
            PaymentStatus::Canceled => "CANCELED",
        }
    }
}

/// One line of an order; the unit price is copied from the item when the order is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub item_id: String,
    pub name: String,
    pub unit_price: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    #[serde(rename = "type")]
    pub payment_type: PaymentType,
    pub amount: i64,
    pub status: PaymentStatus,
    pub pg_transaction_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub member_id: String,
    pub status: OrderStatus,
    pub total_price: i64,
    pub items: Vec<OrderLine>,
    #[serde(default)]
    pub payments: Vec<Payment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The pickup number of its business day, given when it is paid (orders paid before the
    /// floor existed have none). An order with a number holds a floor slot until `READY` or
    /// cancelled (`docs/floor.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
}

/// A requested line before prices are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub item_id: String,
    pub quantity: i64,
}

/// A requested payment part before the gateway is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedPayment {
    pub amount: i64,
    pub payment_type: PaymentType,
}

/// Checks the shape of an order request: 1–20 lines, quantity 1–100, no item twice.
pub fn check_order_lines(lines: &[RequestedLine]) -> Result<()> {
    if lines.is_empty() || lines.len() > MAX_ORDER_LINES {
        return Err(Error::invalid("items"));
    }
    for (index, line) in lines.iter().enumerate() {
        if line.item_id.is_empty() || line.item_id.len() > 64 {
            return Err(Error::invalid(format!("items[{index}].itemId")));
        }
        if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
            return Err(Error::invalid(format!("items[{index}].quantity")));
        }
        if lines[..index].iter().any(|l| l.item_id == line.item_id) {
            return Err(Error::invalid(format!("items[{index}].itemId")));
        }
    }
    Ok(())
}

/// Prices the requested lines from the current items: unknown item → 404CO000, stock below the
/// quantity → 400OR000, an inactive item → 400OR002, total computed with checked arithmetic. `items` may be in any order.
pub fn price_order(lines: &[RequestedLine], items: &[Item]) -> Result<(Vec<OrderLine>, i64)> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    for line in lines {
        let item = items
            .iter()
            .find(|i| i.item_id == line.item_id)
            .ok_or(Error::NotFound("item"))?;
        item.check_orderable()?;
        if item.stock < line.quantity {
            return Err(Error::OutOfStock(item.item_id.clone()));
        }
        let line_total = item
            .price
            .checked_mul(line.quantity)
            .ok_or_else(|| Error::invalid("items"))?;
        total = total
            .checked_add(line_total)
            .ok_or_else(|| Error::invalid("items"))?;
        priced.push(OrderLine {
            item_id: item.item_id.clone(),
            name: item.name.clone(),
            unit_price: item.price,
            quantity: line.quantity,
        });
    }
    Ok((priced, total))
}

/// Checks payment parts: 1–5 parts, each amount > 0, adding up (checked) to the order total.
pub fn check_payment_parts(parts: &[RequestedPayment], order_total: i64) -> Result<()> {
    if parts.is_empty() || parts.len() > MAX_PAYMENT_PARTS {
        return Err(Error::invalid("payments"));
    }
    let mut sum: i64 = 0;
    for (index, part) in parts.iter().enumerate() {
        if part.amount <= 0 {
            return Err(Error::invalid(format!("payments[{index}].amount")));
        }
        sum = sum.checked_add(part.amount).ok_or(Error::PaymentMismatch)?;
    }
    if sum != order_total {
        return Err(Error::PaymentMismatch);
    }
    Ok(())
}

impl Order {
    /// Payment needs `PENDING_PAYMENT` (400OR001 otherwise; `EXPIRED` → 400OR003).
    pub fn check_payable(&self) -> Result<()> {
        match self.status {
            OrderStatus::PendingPayment => Ok(()),
            OrderStatus::Expired => Err(Error::PaymentWindowPassed),
            _ => Err(Error::OrderStatusConflict),
        }
    }

    /// Cancel needs `PENDING_PAYMENT` or `COMPLETED` (400OR001 otherwise).
    pub fn check_cancellable(&self) -> Result<()> {
        match self.status {
            OrderStatus::PendingPayment | OrderStatus::Completed => Ok(()),
            // Once staff start preparing it, the order can no longer be cancelled.
            OrderStatus::Preparing
            | OrderStatus::Ready
            | OrderStatus::PickedUp
            | OrderStatus::Cancelled
            | OrderStatus::Expired => Err(Error::OrderStatusConflict),
        }
    }

    /// Only the member who placed it may see or touch an order (403CO000).
    pub fn check_owner(&self, member_id: &str) -> Result<()> {
        if self.member_id == member_id {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, price: i64, stock: i64) -> Item {
        Item {
            item_id: id.into(),
            name: id.into(),
            price,
            stock,
            active: true,
            version: 0,
        }
    }

    #[test]
    fn inactive_items_cannot_be_ordered() {
        let mut cola = item("cola", 1_500, 10);
        cola.active = false;
        assert_eq!(
            price_order(&[line("cola", 1)], &[cola]),
            Err(Error::ItemUnavailable("cola".into()))
        );
    }

    #[test]
    fn fulfilment_runs_one_step_at_a_time_and_blocks_cancelling() {
        use OrderStatus::*;
        assert_eq!(Preparing.fulfilment_predecessor(), Some(Completed));
        assert_eq!(Ready.fulfilment_predecessor(), Some(Preparing));
        assert_eq!(PickedUp.fulfilment_predecessor(), Some(Ready));
        assert_eq!(Cancelled.fulfilment_predecessor(), None);
        assert_eq!(OrderStatus::parse("PICKED_UP"), Some(PickedUp));
        assert_eq!(OrderStatus::parse("picked_up"), None);
    }

    fn line(id: &str, quantity: i64) -> RequestedLine {
        RequestedLine {
            item_id: id.into(),
            quantity,
        }
    }

    #[test]
    fn prices_lines_and_totals() {
        let (lines, total) = price_order(
            &[line("a", 2), line("b", 1)],
            &[item("b", 700, 1), item("a", 1500, 9)],
        )
        .expect("priced");
        assert_eq!(total, 3_700);
        assert_eq!(lines[0].unit_price, 1_500);
    }

    #[test]
    fn refuses_unknown_items_short_stock_and_overflow() {
        assert_eq!(
            price_order(&[line("x", 1)], &[]),
            Err(Error::NotFound("item"))
        );
        assert_eq!(
            price_order(&[line("a", 3)], &[item("a", 1, 2)]),
            Err(Error::OutOfStock("a".into()))
        );
        assert!(matches!(
            price_order(&[line("a", 100)], &[item("a", i64::MAX / 2, 1000)]),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn order_shape_rules() {
        assert!(check_order_lines(&[]).is_err());
        assert!(check_order_lines(&[line("a", 0)]).is_err());
        assert!(check_order_lines(&[line("a", 101)]).is_err());
        assert!(check_order_lines(&[line("a", 1), line("a", 2)]).is_err());
        let many: Vec<_> = (0..21).map(|i| line(&format!("i{i}"), 1)).collect();
        assert!(check_order_lines(&many).is_err());
        assert!(check_order_lines(&many[..20]).is_ok());
    }

    #[test]
    fn payment_parts_must_add_up() {
        let card = |amount| RequestedPayment {
            amount,
            payment_type: PaymentType::Card,
        };
        assert!(check_payment_parts(&[card(1000), card(500)], 1500).is_ok());
        assert_eq!(
            check_payment_parts(&[card(1000)], 1500),
            Err(Error::PaymentMismatch)
        );
        assert!(check_payment_parts(&[card(0), card(1500)], 1500).is_err());
        assert_eq!(
            check_payment_parts(&[card(i64::MAX), card(i64::MAX)], 1500),
            Err(Error::PaymentMismatch)
        );
        assert!(check_payment_parts(&[], 0).is_err());
    }
}
