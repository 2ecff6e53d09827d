//! The staff side: roles, versioned catalogue edits, the fulfilment queue.

use crate::harness::*;
use crate::items_orders::{cancel_refund_of, completion, payment};
use cafe::Error;
use cafe::domain::item::StockMode;
use cafe::domain::{
    DomainEvent, EventType, Item, MemberStatus, OrderStatus, Payment, PaymentStatus, PaymentType,
    Role,
};
use cafe::store::{CompletedCancellation, StockChange};
use chrono::Duration;

fn item_event(item: &Item, kind: EventType) -> DomainEvent {
    DomainEvent::item(kind, item, "staff-1", None, t0())
}

async fn stored(b: &Backend, item_id: &str) -> Item {
    b.store
        .get_item(item_id)
        .await
        .expect("read")
        .expect("item")
}

fn stock_change(item_id: &str, mode: StockMode, quantity: i64, version: u64) -> StockChange {
    StockChange {
        item_id: item_id.to_owned(),
        mode,
        quantity,
        expected_version: version,
        history: format!("STOCK_{mode:?} {quantity}: test"),
        at: t0(),
        event: DomainEvent::item(
            EventType::ItemStockChanged,
            &item("x", 1, 1),
            "staff-1",
            Some("test"),
            t0(),
        ),
    }
}

pub async fn roles_are_set_only_on_members_in_service(b: Backend) {
    let m = signed_up(&b, "staff@cafe.example", t0()).await;
    let event = DomainEvent::role(&m.member_id, "STAFF", "admin-1", t0());
    b.store
        .set_member_role(&m.member_id, Role::Staff, t0(), &event)
        .await
        .expect("role set");
    assert!(b.committed(&event).await);
    let read = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(
        (read.role, read.status),
        (Role::Staff, MemberStatus::Service)
    );
    // Found by email too, with its role.
    let by_email = b
        .store
        .find_member_by_email("staff@cafe.example")
        .await
        .expect("read")
        .expect("member");
    assert_eq!(by_email.role, Role::Staff);

    let withdrawn = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", t0());
    b.store
        .withdraw_member(&m.member_id, t0(), &withdrawn)
        .await
        .expect("withdrawn");
    let refused = DomainEvent::role(&m.member_id, "ADMIN", "admin-1", t0());
    assert_eq!(
        b.store
            .set_member_role(&m.member_id, Role::Admin, t0(), &refused)
            .await,
        Err(Error::NotInService)
    );
    assert!(!b.committed(&refused).await, "nothing written");
    let unknown = DomainEvent::role("nobody", "STAFF", "admin-1", t0());
    assert_eq!(
        b.store
            .set_member_role(&id(t0()), Role::Staff, t0(), &unknown)
            .await,
        Err(Error::NotFound("member"))
    );
}

pub async fn item_edits_need_the_version_they_read(b: Backend) {
    let latte = item("Latte", 4_500, 30);
    let created = item_event(&latte, EventType::ItemCreated);
    b.store
        .create_item(&latte, t0(), &created)
        .await
        .expect("created");
    assert!(b.committed(&created).await);
    assert!(
        b.store
            .list_items()
            .await
            .expect("list")
            .iter()
            .any(|i| i.item_id == latte.item_id),
        "in the catalogue"
    );

    // A sale between the read and the edit: the edit keeps the stock as sales left it.
    b.store
        .change_stock(&stock_change(&latte.item_id, StockMode::Add, -5, 0))
        .await
        .expect("a breakage");
    let mut next = stored(&b, &latte.item_id).await;
    assert_eq!((next.stock, next.version), (25, 1));
    next.price = 4_800;
    next.active = false;
    next.version = 2;
    let updated = item_event(&next, EventType::ItemUpdated);
    b.store
        .update_item(&next, "UPDATED price deactivated", t0(), &updated)
        .await
        .expect("updated");
    let now = stored(&b, &latte.item_id).await;
    assert_eq!(
        (now.price, now.active, now.stock, now.version),
        (4_800, false, 25, 2)
    );
    // The same edit again (another staff member's, from version 1): refused, nothing written.
    let again = item_event(&next, EventType::ItemUpdated);
    assert_eq!(
        b.store.update_item(&next, "UPDATED", t0(), &again).await,
        Err(Error::VersionConflict)
    );
    assert!(!b.committed(&again).await);

    let stale = stock_change(&latte.item_id, StockMode::Add, 10, 1);
    assert_eq!(
        b.store.change_stock(&stale).await,
        Err(Error::VersionConflict)
    );
    assert!(!b.committed(&stale.event).await);
    let too_many = stock_change(&latte.item_id, StockMode::Add, -26, 2);
    assert_eq!(
        b.store.change_stock(&too_many).await,
        Err(Error::OutOfStock(latte.item_id.clone()))
    );
    let count = stock_change(&latte.item_id, StockMode::Set, 12, 2);
    b.store.change_stock(&count).await.expect("a shelf count");
    assert!(b.committed(&count.event).await);
    let now = stored(&b, &latte.item_id).await;
    assert_eq!((now.stock, now.version), (12, 3));

    let unknown = item("Ghost", 1, 1);
    assert_eq!(
        b.store
            .change_stock(&stock_change(&unknown.item_id, StockMode::Add, 1, 0))
            .await,
        Err(Error::NotFound("item"))
    );
    let mut ghost = unknown.clone();
    ghost.version = 1;
    assert_eq!(
        b.store
            .update_item(
                &ghost,
                "UPDATED",
                t0(),
                &item_event(&ghost, EventType::ItemUpdated)
            )
            .await,
        Err(Error::NotFound("item"))
    );
}

pub async fn paid_orders_queue_oldest_first_and_move_one_step_at_a_time(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 100).await;
    let mut paid = Vec::new();
    for minute in 0..3 {
        let at = t0() + Duration::minutes(minute);
        let o = placed(&b, "member-1", vec![line(&cola, 1)], at).await;
        let done = completion(
            b.store.as_ref(),
            &o,
            vec![payment(1_500, PaymentType::Card)],
            at,
        )
        .await;
        b.store.complete_payment(&done).await.expect("paid");
        paid.push(o);
    }
    // A pending order is not in the queue.
    placed(&b, "member-1", vec![line(&cola, 1)], t0()).await;

    let first = b
        .store
        .fulfilment_orders(OrderStatus::Completed, 2, None)
        .await
        .expect("queue");
    let ids = |page: &cafe::store::OrderPage| -> Vec<String> {
        page.orders.iter().map(|o| o.order_id.clone()).collect()
    };
    assert_eq!(
        ids(&first),
        [paid[0].order_id.clone(), paid[1].order_id.clone()]
    );
    let rest = b
        .store
        .fulfilment_orders(OrderStatus::Completed, 2, first.next_cursor.as_deref())
        .await
        .expect("queue");
    assert_eq!(ids(&rest), [paid[2].order_id.clone()]);
    assert_eq!(rest.next_cursor, None);
    // A cursor of one status does not serve another.
    assert_eq!(
        b.store
            .fulfilment_orders(OrderStatus::Ready, 2, first.next_cursor.as_deref())
            .await,
        Err(Error::invalid("cursor"))
    );

    let step = |o: &cafe::domain::Order, to: OrderStatus| {
        order_event(EventType::OrderFulfilmentAdvanced, o, to.as_str(), t0())
    };
    let o = &paid[0];
    let preparing = step(o, OrderStatus::Preparing);
    b.store
        .advance_order(
            &o.order_id,
            OrderStatus::Completed,
            OrderStatus::Preparing,
            t0() + Duration::minutes(5),
            &preparing,
            None,
        )
        .await
        .expect("preparing");
    assert!(b.committed(&preparing).await);
    // The same step again (another staff member): refused, nothing written.
    let twice = step(o, OrderStatus::Preparing);
    assert_eq!(
        b.store
            .advance_order(
                &o.order_id,
                OrderStatus::Completed,
                OrderStatus::Preparing,
                t0(),
                &twice,
                None,
            )
            .await,
        Err(Error::OrderStatusConflict)
    );
    assert!(!b.committed(&twice).await);
    let queue = |status| {
        let store = b.store.clone();
        async move {
            store
                .fulfilment_orders(status, 10, None)
                .await
                .expect("queue")
                .orders
                .into_iter()
                .map(|o| o.order_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        queue(OrderStatus::Preparing).await,
        std::slice::from_ref(&o.order_id)
    );
    assert_eq!(queue(OrderStatus::Completed).await.len(), 2);
    for (from, to) in [
        (OrderStatus::Preparing, OrderStatus::Ready),
        (OrderStatus::Ready, OrderStatus::PickedUp),
    ] {
        b.store
            .advance_order(
                &o.order_id,
                from,
                to,
                t0() + Duration::minutes(6),
                &step(o, to),
                None,
            )
            .await
            .expect("step");
    }
    assert!(queue(OrderStatus::Ready).await.is_empty());
    assert!(queue(OrderStatus::Preparing).await.is_empty());
    let history = b.store.order_history(&o.order_id).await.expect("history");
    assert_eq!(
        statuses(&history),
        [
            "PENDING_PAYMENT",
            "COMPLETED",
            "PREPARING",
            "READY",
            "PICKED_UP"
        ]
    );
    // A paid order cancelled before preparing leaves the queue.
    let cancelled = &paid[1];
    let stored_order = b
        .store
        .get_order(&cancelled.order_id)
        .await
        .expect("read")
        .expect("order");
    let at = t0() + Duration::minutes(7);
    b.store
        .cancel_completed_order(&CompletedCancellation {
            order_id: cancelled.order_id.clone(),
            lines: cancelled.items.clone(),
            payments: stored_order
                .payments
                .iter()
                .map(|p| Payment {
                    status: PaymentStatus::Canceled,
                    ..p.clone()
                })
                .collect(),
            at,
            events: vec![order_event(
                EventType::OrderCancelled,
                cancelled,
                "CANCELLED",
                at,
            )],
            refund: cancel_refund_of(&stored_order, at),
            release: None,
        })
        .await
        .expect("cancelled");
    assert_eq!(
        queue(OrderStatus::Completed).await,
        [paid[2].order_id.clone()]
    );
    assert_eq!(
        b.store
            .advance_order(
                &id(t0()),
                OrderStatus::Completed,
                OrderStatus::Preparing,
                t0(),
                &step(o, OrderStatus::Preparing),
                None,
            )
            .await,
        Err(Error::NotFound("order"))
    );
}
