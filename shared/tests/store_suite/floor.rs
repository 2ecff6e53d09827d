//! The floor's store operations (`docs/floor.md`): pickup counters per day, the shop's state,
//! slots reserved with an attempt and given back with its refund, the closed shop refusing new
//! orders, the queue counted, and the pending list the expiry sweep reads.

use crate::harness::*;
use cafe::Error;
use cafe::domain::attempt::{AttemptKind, AttemptPart, AttemptState, PaymentAttempt};
use cafe::domain::floor::FloorSlot;
use cafe::domain::{DomainEvent, EventType, OrderStatus, PaymentType};
use cafe::store::ShopChange;
use chrono::Duration;

fn attempt(member: &str, order_id: &str, max_in_progress: i64, per_member: i64) -> PaymentAttempt {
    PaymentAttempt {
        attempt_id: cafe::ids::new_id(t0()),
        kind: AttemptKind::Payment,
        order_id: order_id.into(),
        member_id: member.into(),
        parts: vec![AttemptPart {
            payment_type: PaymentType::Card,
            amount: 1_500,
            pg_transaction_id: None,
            payment_id: None,
            refunded: false,
        }],
        state: AttemptState::Charging,
        deadline: t0() + Duration::seconds(45),
        committed_at: None,
        commit_sequence: None,
        idempotency_key: None,
        created_at: t0(),
        floor: Some(FloorSlot {
            max_in_progress,
            max_open_per_member: per_member,
            pickup_number: None,
            business_day: None,
        }),
    }
}

fn shop(open: bool, message: Option<&str>) -> (ShopChange, DomainEvent) {
    (
        ShopChange {
            open,
            message: message.map(str::to_owned),
            staff_id: "staff-1".into(),
            at: t0(),
        },
        DomainEvent::shop(open, message, "staff-1", t0()),
    )
}

pub async fn pickup_numbers_count_per_day(b: Backend) {
    for expected in 1..=3 {
        assert_eq!(b.store.take_pickup_number("2026-01-15").await, Ok(expected));
    }
    assert_eq!(b.store.take_pickup_number("2026-01-16").await, Ok(1));
    assert_eq!(b.store.take_pickup_number("2026-01-15").await, Ok(4));
}

pub async fn slots_are_reserved_with_the_attempt_and_given_back_with_its_refund(b: Backend) {
    let state = b.store.floor_state("2026-01-15").await.expect("state");
    assert!(state.open && state.in_progress == 0 && state.message.is_none());
    // Room for two in all, one per member.
    let first = attempt("m1", &id(t0()), 2, 1);
    b.store.start_attempt(&first, None).await.expect("reserved");
    let same_member = attempt("m1", &id(t0()), 2, 1);
    assert_eq!(
        b.store.start_attempt(&same_member, None).await,
        Err(Error::TooManyOpenOrders(0))
    );
    assert_eq!(b.store.get_attempt(&same_member.attempt_id).await, Ok(None));
    b.store
        .start_attempt(&attempt("m2", &id(t0()), 2, 1), None)
        .await
        .expect("reserved");
    let full = attempt("m3", &id(t0()), 2, 1);
    assert_eq!(
        b.store.start_attempt(&full, None).await,
        Err(Error::ShopFull(0))
    );
    assert_eq!(b.store.get_attempt(&full.attempt_id).await, Ok(None));
    assert_eq!(b.store.floor_state("d").await.map(|s| s.in_progress), Ok(2));
    assert_eq!(b.store.open_orders_of("m1").await, Ok(1));

    // The first payment is refunded: its slot comes back in the same write.
    let mut refunding = first.clone();
    refunding.state = AttemptState::Refunding;
    assert_eq!(
        b.store
            .update_attempt(&refunding, AttemptState::Charging)
            .await,
        Ok(true)
    );
    assert_eq!(b.store.settle_refunded(&refunding).await, Ok(true));
    assert_eq!(b.store.open_orders_of("m1").await, Ok(0));
    assert_eq!(b.store.floor_state("d").await.map(|s| s.in_progress), Ok(1));
    // Settled once only: a second settle gives nothing back.
    assert_eq!(b.store.settle_refunded(&refunding).await, Ok(false));
    assert_eq!(b.store.floor_state("d").await.map(|s| s.in_progress), Ok(1));
    b.store
        .start_attempt(&attempt("m3", &id(t0()), 2, 1), None)
        .await
        .expect("the slot came back");

    // Closed: refused with the message, before the limits are looked at.
    let (change, event) = shop(false, Some("Back at 2pm"));
    b.store.set_shop(&change, &event).await.expect("closed");
    assert!(b.committed(&event).await);
    assert_eq!(
        b.store
            .start_attempt(&attempt("m4", &id(t0()), 100, 100), None)
            .await,
        Err(Error::ShopClosed(Some("Back at 2pm".into())))
    );
    let state = b.store.floor_state("d").await.expect("state");
    assert!(!state.open);
    assert_eq!(state.message.as_deref(), Some("Back at 2pm"));
    assert_eq!(state.updated_at, Some(t0()));
}

pub async fn a_closed_shop_takes_no_new_order(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let (change, event) = shop(false, None);
    b.store.set_shop(&change, &event).await.expect("closed");
    let o = order("m1", vec![line(&cola, 1)], t0());
    let created = order_event(EventType::OrderCreated, &o, "PENDING_PAYMENT", t0());
    assert_eq!(
        b.store.create_order(&o, &created).await,
        Err(Error::ShopClosed(None))
    );
    assert_eq!(b.store.get_order(&o.order_id).await, Ok(None));
    assert!(!b.committed(&created).await);
    let (change, event) = shop(true, None);
    b.store.set_shop(&change, &event).await.expect("open");
    b.store
        .create_order(&o, &created)
        .await
        .expect("open again");
}

pub async fn pending_orders_are_listed_until_paid_cancelled_or_expired(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let old = placed(&b, "m1", vec![line(&cola, 1)], t0()).await;
    let cancelled = placed(&b, "m1", vec![line(&cola, 1)], t0() + Duration::seconds(1)).await;
    let recent = placed(&b, "m1", vec![line(&cola, 1)], t0() + Duration::minutes(10)).await;
    let cut = t0() + Duration::minutes(5);
    let listed = |page: cafe::store::OrderPage| {
        page.orders
            .into_iter()
            .map(|o| o.order_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(
            b.store
                .pending_orders_before(cut, 10, None)
                .await
                .expect("page")
        ),
        [old.order_id.clone(), cancelled.order_id.clone()]
    );
    // Paged.
    let first = b
        .store
        .pending_orders_before(cut, 1, None)
        .await
        .expect("page");
    assert_eq!(listed(first.clone()), std::slice::from_ref(&old.order_id));
    let second = b
        .store
        .pending_orders_before(cut, 1, first.next_cursor.as_deref())
        .await
        .expect("page");
    assert_eq!(listed(second), std::slice::from_ref(&cancelled.order_id));

    let at = t0() + Duration::minutes(6);
    let gone = order_event(EventType::OrderCancelled, &cancelled, "CANCELLED", at);
    b.store
        .cancel_pending_order(&cancelled.order_id, at, &gone)
        .await
        .expect("cancelled");
    let expiry = order_event(EventType::OrderExpired, &old, "EXPIRED", at);
    assert_eq!(
        b.store.expire_order(&old.order_id, at, &expiry).await,
        Ok(true)
    );
    assert!(b.committed(&expiry).await);
    let again = order_event(EventType::OrderExpired, &old, "EXPIRED", at);
    assert_eq!(
        b.store.expire_order(&old.order_id, at, &again).await,
        Ok(false)
    );
    assert!(!b.committed(&again).await);
    assert_eq!(
        b.store.expire_order(&cancelled.order_id, at, &again).await,
        Ok(false)
    );
    let stored = b
        .store
        .get_order(&old.order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(stored.status, OrderStatus::Expired);
    let history = b.store.order_history(&old.order_id).await.expect("history");
    assert_eq!(statuses(&history), ["PENDING_PAYMENT", "EXPIRED"]);
    assert!(
        listed(
            b.store
                .pending_orders_before(cut, 10, None)
                .await
                .expect("page")
        )
        .is_empty()
    );
    assert_eq!(
        listed(
            b.store
                .pending_orders_before(t0() + Duration::hours(1), 10, None)
                .await
                .expect("page")
        ),
        std::slice::from_ref(&recent.order_id)
    );
    assert!(matches!(
        b.store
            .pending_orders_before(cut, 10, Some("not-a-cursor"))
            .await,
        Err(Error::InvalidParameter(_))
    ));
}
