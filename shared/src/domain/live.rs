//! The live channel's rules (`docs/live.md`): tickets, who may subscribe to what, which
//! committed event reaches which subscription, and the messages on the wire. Pure: the stores
//! keep tickets, connections and subscriptions; the local server and the Lambda sender deliver.

use crate::domain::{DomainEvent, EventType, OrderStatus, Role};
use crate::error::Error;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A ticket is good for this long after it is issued, and only once.
pub const TICKET_TTL: Duration = Duration::seconds(30);
/// API Gateway closes a WebSocket connection after 2 hours: its row lives as long.
pub const CONNECTION_TTL: Duration = Duration::hours(2);
/// Clients ping this often, under API Gateway's 10-minute idle limit.
pub const HEARTBEAT_SECONDS: u64 = 300;

/// Who is at the other end of a connection: a redeemed ticket's member and role, or anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub member_id: Option<String>,
    pub role: Role,
}

impl Grant {
    pub fn anonymous() -> Self {
        Self {
            member_id: None,
            role: Role::Customer,
        }
    }

    pub fn member(member_id: &str, role: Role) -> Self {
        Self {
            member_id: Some(member_id.to_owned()),
            role,
        }
    }

    fn is_staff(&self) -> bool {
        self.member_id.is_some() && self.role >= Role::Staff
    }
}

/// A fresh ticket: the opaque value handed to the client, and the hash it is stored under (a
/// dump of the table cannot be replayed).
pub fn new_ticket() -> (String, String) {
    let ticket = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = ticket_hash(&ticket);
    (ticket, hash)
}

/// The key a presented ticket is looked up by.
pub fn ticket_hash(ticket: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(ticket.as_bytes()))
}

/// A presented ticket that cannot be one of ours (wrong length or alphabet) is refused before
/// any lookup.
pub fn ticket_is_well_formed(ticket: &str) -> bool {
    ticket.len() == 43
        && ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a client may subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// A customer's own orders, or (staff) the whole queue.
    Orders,
    /// One order.
    Order(String),
    /// Pickup numbers and statuses only; anyone.
    Display,
}

impl Topic {
    pub fn name(&self) -> &'static str {
        match self {
            Topic::Orders => "orders",
            Topic::Order(_) => "order",
            Topic::Display => "display",
        }
    }
}

/// One client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Subscribe(Topic),
    Ping,
}

/// Parses a client's text frame; anything else is 400CO000 naming the field at fault.
pub fn parse_frame(text: &str) -> Result<ClientFrame, Error> {
    let value: Value = serde_json::from_str(text).map_err(|_| Error::invalid("body"))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    match field("action") {
        Some("ping") => Ok(ClientFrame::Ping),
        Some("subscribe") => match field("topic") {
            Some("orders") => Ok(ClientFrame::Subscribe(Topic::Orders)),
            Some("display") => Ok(ClientFrame::Subscribe(Topic::Display)),
            Some("order") => match field("orderId") {
                Some(id) if crate::ids::is_well_formed(id) => {
                    Ok(ClientFrame::Subscribe(Topic::Order(id.to_owned())))
                }
                _ => Err(Error::invalid("orderId")),
            },
            _ => Err(Error::invalid("topic")),
        },
        _ => Err(Error::invalid("action")),
    }
}

/// Where a subscription is kept, and what an event is delivered to.
pub fn member_key(member_id: &str) -> String {
    format!("MEMBER#{member_id}")
}
pub fn order_key(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}
pub const STAFF_KEY: &str = "STAFF";
pub const DISPLAY_KEY: &str = "DISPLAY";

/// The subscription key `grant` gets for `topic`, or why not: anonymous → 401CO000 for
/// anything but the display; a customer naming an order that is not theirs (or unknown:
/// `owner` is `None`) → 403CO000, so an order's existence is not revealed either.
pub fn subscription_key(
    grant: &Grant,
    topic: &Topic,
    owner: Option<&str>,
) -> Result<String, Error> {
    match topic {
        Topic::Display => Ok(DISPLAY_KEY.to_owned()),
        _ if grant.member_id.is_none() => Err(Error::Unauthorized),
        Topic::Orders if grant.is_staff() => Ok(STAFF_KEY.to_owned()),
        Topic::Orders => Ok(member_key(grant.member_id.as_deref().unwrap_or_default())),
        Topic::Order(order_id) => {
            if grant.is_staff() || (owner.is_some() && owner == grant.member_id.as_deref()) {
                Ok(order_key(order_id))
            } else {
                Err(Error::Forbidden)
            }
        }
    }
}

/// The status change a committed event announces, by order: `(order id, status)`.
/// The event types that change an order's status ([`status_change`]): what the live sender's
/// EventBridge rule lets through (`template.yaml`, checked by `template_consistency.rs`).
pub const LIVE_EVENT_TYPES: [EventType; 5] = [
    EventType::OrderCreated,
    EventType::PaymentCompleted,
    EventType::OrderFulfilmentAdvanced,
    EventType::OrderCancelled,
    EventType::OrderExpired,
];

pub fn status_change(event: &DomainEvent) -> Option<(String, OrderStatus)> {
    let order_id = event.detail.get("orderId")?.as_str()?.to_owned();
    let status = match event.event_type {
        EventType::OrderCreated => OrderStatus::PendingPayment,
        EventType::PaymentCompleted => OrderStatus::Completed,
        EventType::OrderFulfilmentAdvanced => {
            OrderStatus::parse(event.detail.get("status")?.as_str()?)?
        }
        EventType::OrderCancelled => OrderStatus::Cancelled,
        EventType::OrderExpired => OrderStatus::Expired,
        _ => return None,
    };
    Some((order_id, status))
}

/// One status change a committed event announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub order_id: String,
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
    /// The part whose `PaymentCompleted` this is, for a payment.
    pub payment_id: Option<String>,
}

/// The status changes a batch of committed events announces, in the batch's order. A split
/// payment commits one `PaymentCompleted` per part: each part is a change of its own here, and
/// [`announces`] picks the one that speaks for the order.
pub fn status_changes(events: &[DomainEvent]) -> Vec<StatusChange> {
    events
        .iter()
        .filter_map(|event| {
            let (order_id, status) = status_change(event)?;
            Some(StatusChange {
                order_id,
                status,
                at: event.occurred_at,
                payment_id: event
                    .detail
                    .get("paymentId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

/// Whether `change` is the one that announces its order's status: a split payment commits one
/// `PaymentCompleted` per part, and only the first part's speaks for the order, so listeners
/// hear `COMPLETED` once however the events arrive (one invocation each behind EventBridge).
/// An order without its copy of the payments (paid before the copy) lets every part speak.
pub fn announces(change: &StatusChange, order: &crate::domain::Order) -> bool {
    match (&change.payment_id, order.payments.first()) {
        (Some(part), Some(first)) => *part == first.payment_id,
        _ => true,
    }
}

/// One order's change, with what the messages need from the stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    pub order_id: String,
    pub member_id: String,
    pub status: OrderStatus,
    pub pickup_number: Option<u32>,
    pub at: DateTime<Utc>,
}

/// The message to the order's owner and staff (topics `orders` and `order`).
pub fn order_message(change: &OrderChange) -> String {
    json!({
        "type": "order",
        "orderId": change.order_id,
        "status": change.status.as_str(),
        "pickupNumber": change.pickup_number,
        "version": change.status.progress(),
        "at": crate::clock::rfc3339(change.at),
    })
    .to_string()
}

/// The display's message: a pickup number and a status, nothing else. `None` for an order
/// with no number (not paid yet) — the display has nothing to show for it.
pub fn display_message(change: &OrderChange) -> Option<String> {
    let number = change.pickup_number?;
    if change.status == OrderStatus::PendingPayment {
        return None;
    }
    Some(
        json!({
            "type": "display",
            "pickupNumber": number,
            "status": change.status.as_str(),
            "version": change.status.progress(),
        })
        .to_string(),
    )
}

/// Every `(subscription key, message)` one change is delivered as.
pub fn deliveries(change: &OrderChange) -> Vec<(String, String)> {
    let message = order_message(change);
    let mut out = vec![
        (member_key(&change.member_id), message.clone()),
        (order_key(&change.order_id), message.clone()),
    ];
    if change.status != OrderStatus::PendingPayment {
        // Staff hear the queue: paid orders onward.
        out.push((STAFF_KEY.to_owned(), message));
    }
    if let Some(display) = display_message(change) {
        out.push((DISPLAY_KEY.to_owned(), display));
    }
    out
}

/// The answer to a subscribe.
pub fn subscribed(topic: &Topic) -> String {
    json!({"type": "subscribed", "topic": topic.name(), "heartbeatSeconds": HEARTBEAT_SECONDS})
        .to_string()
}

/// The answer to a ping.
pub fn pong() -> String {
    json!({"type": "pong"}).to_string()
}

/// An error frame in the contract's codes.
pub fn error_frame(error: &Error) -> String {
    let wire = error.wire();
    json!({"type": "error", "code": wire.code, "message": wire.message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_live_event_types_change_an_orders_status() {
        let at = Utc::now();
        for event_type in LIVE_EVENT_TYPES {
            let event = DomainEvent::order(event_type, "o1", "m1", "READY", 100, at);
            assert!(status_change(&event).is_some(), "{event_type:?}");
        }
        for event_type in [
            EventType::PaymentRefunded,
            EventType::MemberWithdrawn,
            EventType::ItemStockChanged,
            EventType::ShopStatusChanged,
        ] {
            let event = DomainEvent::order(event_type, "o1", "m1", "READY", 100, at);
            assert_eq!(status_change(&event), None, "{event_type:?}");
        }
    }

    fn change(status: OrderStatus, number: Option<u32>) -> OrderChange {
        OrderChange {
            order_id: "01JC0FFEE00000000000000C01".into(),
            member_id: "m1".into(),
            status,
            pickup_number: number,
            at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn display_messages_carry_numbers_and_statuses_only() {
        let message = display_message(&change(OrderStatus::Ready, Some(17))).expect("message");
        let value: Value = serde_json::from_str(&message).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["pickupNumber", "status", "type", "version"]);
        assert_eq!(display_message(&change(OrderStatus::Ready, None)), None);
    }

    #[test]
    fn customers_may_name_only_their_own_orders() {
        let me = Grant::member("m1", Role::Customer);
        let order = Topic::Order("o1".into());
        assert_eq!(
            subscription_key(&me, &order, Some("m1")),
            Ok("ORDER#o1".into())
        );
        assert_eq!(
            subscription_key(&me, &order, Some("m2")),
            Err(Error::Forbidden)
        );
        assert_eq!(subscription_key(&me, &order, None), Err(Error::Forbidden));
        let staff = Grant::member("s1", Role::Staff);
        assert_eq!(
            subscription_key(&staff, &Topic::Orders, None),
            Ok("STAFF".into())
        );
        let anonymous = Grant::anonymous();
        assert_eq!(
            subscription_key(&anonymous, &Topic::Orders, None),
            Err(Error::Unauthorized)
        );
        assert_eq!(
            subscription_key(&anonymous, &Topic::Display, None),
            Ok("DISPLAY".into())
        );
    }

    #[test]
    fn tickets_are_unguessable_and_stored_by_hash() {
        let (a, hash) = new_ticket();
        let (b, _) = new_ticket();
        assert_ne!(a, b);
        assert!(ticket_is_well_formed(&a));
        assert_eq!(ticket_hash(&a), hash);
        assert_ne!(hash, a);
        assert!(!ticket_is_well_formed("forged"));
    }
}
