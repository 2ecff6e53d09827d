//! What a suite test gets: the store under test, and a way to see what it committed.

use cafe::domain::{
    DomainEvent, EventType, Gender, Item, Member, MemberStatus, Order, OrderLine, OrderStatus,
    StoredPassword,
};
use cafe::events::MemoryEventLog;
use cafe::store::dynamo::{DynamoStore, outbox_pk};
pub use cafe::store::{
    IdempotencyStore, ItemStore, MemberStore, OrderStore, RefreshTokenStore, WithdrawalExpiryStore,
};
use cafe::store::{MemoryStore, Store};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::Arc;

pub struct Backend {
    pub store: Arc<dyn Store>,
    /// Set on DynamoDB: raw access to the table.
    pub dynamo: Option<DynamoStore>,
    events: Option<Arc<MemoryEventLog>>,
}

impl Backend {
    pub fn memory() -> Self {
        let events = Arc::new(MemoryEventLog::new());
        Self {
            store: Arc::new(MemoryStore::with_event_log(events.clone())),
            dynamo: None,
            events: Some(events),
        }
    }

    pub async fn dynamo() -> Self {
        // Warnings of the store (transport failures, conflicts) show up in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("cafe=info")
            .with_test_writer()
            .try_init();
        let endpoint = cafe::testing::dynamodb_endpoint();
        let store = cafe::store::dynamo::testing::fresh_store(&endpoint).await;
        Self {
            store: Arc::new(store.clone()),
            dynamo: Some(store),
            events: None,
        }
    }

    /// True if `event` was committed: in the event log, or as an outbox row of its type.
    pub async fn committed(&self, event: &DomainEvent) -> bool {
        match (&self.events, &self.dynamo) {
            (Some(log), _) => log.events().iter().any(|e| e.event_id == event.event_id),
            (None, Some(dynamo)) => {
                let row = dynamo
                    .raw_item(&outbox_pk(&event.event_id), "EVENT")
                    .await
                    .expect("outbox read");
                match row {
                    Some(row) => {
                        let stored: DomainEvent = serde_json::from_str(
                            row.get("event")
                                .and_then(|v| v.as_s().ok())
                                .expect("event json"),
                        )
                        .expect("event decodes");
                        assert_eq!(
                            row.get("eventType")
                                .and_then(|v| v.as_s().ok())
                                .map(String::as_str),
                            Some(event.event_type.as_str())
                        );
                        assert_eq!(&stored, event);
                        true
                    }
                    None => false,
                }
            }
            (None, None) => unreachable!("a backend has events or a table"),
        }
    }
}

pub fn t0() -> DateTime<Utc> {
    cafe::testing::epoch()
}

pub fn id(at: DateTime<Utc>) -> String {
    cafe::ids::new_id(at)
}

pub fn member(email: &str, at: DateTime<Utc>) -> Member {
    Member {
        member_id: id(at),
        name: "Kim".into(),
        email: email.into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Female),
        birth: NaiveDate::from_ymd_opt(1990, 5, 17),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: at,
        session_version: 0,
    }
}

/// The stored password every suite member is created with.
pub const PASSWORD_PHC: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA";

pub fn password() -> StoredPassword {
    StoredPassword::new(PASSWORD_PHC)
}

pub fn member_event(
    kind: EventType,
    member_id: &str,
    status: &str,
    at: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::member(kind, member_id, status, at)
}

/// Creates a `SERVICE` member and returns it.
pub async fn signed_up(backend: &Backend, email: &str, at: DateTime<Utc>) -> Member {
    let m = member(email, at);
    let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", at);
    backend
        .store
        .create_member(&m, &password(), &event)
        .await
        .expect("sign-up");
    m
}

pub fn item(name: &str, price: i64, stock: i64) -> Item {
    Item {
        item_id: id(t0()),
        name: name.into(),
        price,
        stock,
        active: true,
        version: 0,
    }
}

pub async fn stocked(backend: &Backend, name: &str, price: i64, stock: i64) -> Item {
    let it = item(name, price, stock);
    backend.store.put_item(&it).await.expect("put item");
    it
}

pub fn line(item: &Item, quantity: i64) -> OrderLine {
    OrderLine {
        item_id: item.item_id.clone(),
        name: item.name.clone(),
        unit_price: item.price,
        quantity,
    }
}

pub fn order(member_id: &str, lines: Vec<OrderLine>, at: DateTime<Utc>) -> Order {
    Order {
        order_id: id(at),
        member_id: member_id.into(),
        status: OrderStatus::PendingPayment,
        total_price: lines.iter().map(|l| l.unit_price * l.quantity).sum(),
        items: lines,
        payments: Vec::new(),
        created_at: at,
        updated_at: at,
        pickup_number: None,
        paid_at: None,
    }
}

pub fn order_event(kind: EventType, order: &Order, status: &str, at: DateTime<Utc>) -> DomainEvent {
    DomainEvent::order(
        kind,
        &order.order_id,
        &order.member_id,
        status,
        order.total_price,
        at,
    )
}

/// Stores a new pending order and returns it.
pub async fn placed(
    backend: &Backend,
    member_id: &str,
    lines: Vec<OrderLine>,
    at: DateTime<Utc>,
) -> Order {
    let o = order(member_id, lines, at);
    let event = order_event(EventType::OrderCreated, &o, "PENDING_PAYMENT", at);
    backend
        .store
        .create_order(&o, &event)
        .await
        .expect("create order");
    o
}

pub fn statuses(history: &[cafe::domain::HistoryEntry]) -> Vec<&str> {
    history.iter().map(|h| h.status.as_str()).collect()
}

pub const DAY: Duration = Duration::days(1);
