//! Items, orders and payments: conditions on status and stock, atomicity, pagination.

use crate::harness::*;
use cafe::Error;
use cafe::domain::attempt::{AttemptKind, AttemptPart, AttemptState, PaymentAttempt};
use cafe::domain::{EventType, Order, OrderStatus, Payment, PaymentStatus, PaymentType};
use cafe::store::{CompletedCancellation, PaymentCompletion, Store};
use chrono::Duration;

pub fn payment(amount: i64, kind: PaymentType) -> Payment {
    Payment {
        payment_id: id(t0()),
        payment_type: kind,
        amount,
        status: PaymentStatus::Paid,
        pg_transaction_id: format!("pg-{}", id(t0())),
    }
}

/// The completion of `payments` for `order`: their attempt is written `CHARGED` first, as a
/// payment does before it commits. The stored payments are the attempt's (ids derived from it).
pub async fn completion(
    store: &dyn Store,
    order: &Order,
    payments: Vec<Payment>,
    at: chrono::DateTime<chrono::Utc>,
) -> PaymentCompletion {
    let attempt = PaymentAttempt {
        attempt_id: id(at),
        kind: AttemptKind::Payment,
        order_id: order.order_id.clone(),
        member_id: order.member_id.clone(),
        parts: payments
            .iter()
            .map(|p| AttemptPart {
                payment_type: p.payment_type,
                amount: p.amount,
                pg_transaction_id: Some(p.pg_transaction_id.clone()),
                payment_id: None,
                refunded: false,
            })
            .collect(),
        state: AttemptState::Charged,
        deadline: at + Duration::seconds(60),
        committed_at: Some(at),
        commit_sequence: Some(ulid::Ulid::new().to_string()),
        idempotency_key: None,
        created_at: at,
        floor: None,
    };
    store.start_attempt(&attempt, None).await.expect("attempt");
    PaymentCompletion::of(&attempt, &order.items, None).expect("completion")
}

/// The refund attempt a cancellation of `paid` writes.
pub fn cancel_refund_of(paid: &Order, at: chrono::DateTime<chrono::Utc>) -> PaymentAttempt {
    cafe::domain::attempt::cancel_refund(id(at), paid, at + Duration::seconds(60), at)
}

async fn stock_of(b: &Backend, item_id: &str) -> i64 {
    b.store
        .get_item(item_id)
        .await
        .expect("read")
        .expect("item exists")
        .stock
}

pub async fn items_are_stored_listed_and_batch_read(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let book = stocked(&b, "Book", 25_000, 15).await;
    assert_eq!(
        b.store.get_item(&cola.item_id).await.expect("read"),
        Some(cola.clone())
    );
    assert_eq!(b.store.get_item("missing").await.expect("read"), None);
    let mut expected = vec![cola.clone(), book.clone()];
    expected.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    assert_eq!(b.store.list_items().await.expect("list"), expected);
    let mut some = b
        .store
        .get_items(&[book.item_id.clone(), "missing".into(), cola.item_id.clone()])
        .await
        .expect("batch");
    some.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    assert_eq!(some, expected);
    let restocked = cafe::domain::Item {
        stock: 99,
        active: true,
        version: 0,
        ..cola.clone()
    };
    b.store.put_item(&restocked).await.expect("replaced");
    assert_eq!(stock_of(&b, &cola.item_id).await, 99);
    assert_eq!(b.store.list_items().await.expect("list").len(), 2);
}

pub async fn orders_are_created_with_history_and_event(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let o = order("member-1", vec![line(&cola, 2)], t0());
    let event = order_event(EventType::OrderCreated, &o, "PENDING_PAYMENT", t0());
    b.store.create_order(&o, &event).await.expect("created");
    assert_eq!(
        b.store.get_order(&o.order_id).await.expect("read"),
        Some(o.clone())
    );
    assert_eq!(b.store.get_order(&id(t0())).await.expect("read"), None);
    assert_eq!(
        statuses(&b.store.order_history(&o.order_id).await.expect("history")),
        ["PENDING_PAYMENT"]
    );
    assert!(b.committed(&event).await);
    assert_eq!(
        stock_of(&b, &cola.item_id).await,
        10,
        "ordering takes no stock"
    );
}

pub async fn orders_page_newest_first(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 100).await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            placed(
                &b,
                "member-1",
                vec![line(&cola, 1)],
                t0() + Duration::seconds(i),
            )
            .await,
        );
    }
    placed(&b, "member-2", vec![line(&cola, 1)], t0()).await;
    let paid = made[5].clone();
    b.store
        .complete_payment(
            &completion(
                b.store.as_ref(),
                &paid,
                vec![payment(1_500, PaymentType::Card)],
                t0() + DAY,
            )
            .await,
        )
        .await
        .expect("paid");

    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = b
            .store
            .list_orders("member-1", 3, cursor.as_deref())
            .await
            .expect("page");
        pages.push(page.orders.clone());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 10);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let ids: Vec<String> = pages.concat().iter().map(|o| o.order_id.clone()).collect();
    let mut expected: Vec<String> = made.iter().map(|o| o.order_id.clone()).collect();
    expected.reverse();
    assert_eq!(ids, expected, "newest first");
    let listed_paid = pages
        .concat()
        .into_iter()
        .find(|o| o.order_id == paid.order_id)
        .expect("listed");
    assert_eq!(listed_paid.status, OrderStatus::Completed);
    assert_eq!(
        listed_paid.payments.len(),
        1,
        "listed orders carry their payments"
    );

    let exact = b
        .store
        .list_orders("member-1", 7, None)
        .await
        .expect("page");
    assert_eq!(exact.orders.len(), 7);
    assert_eq!(exact.next_cursor, None, "no cursor when nothing is left");
    let none = b
        .store
        .list_orders("member-3", 3, None)
        .await
        .expect("page");
    assert!(none.orders.is_empty() && none.next_cursor.is_none());
}

pub async fn a_tampered_order_cursor_is_refused(b: Backend) {
    for bad in ["%%%", "e30", "eyJiZWZvcmUiOjF9"] {
        assert_eq!(
            b.store.list_orders("member-1", 3, Some(bad)).await,
            Err(Error::invalid("cursor")),
            "cursor {bad}"
        );
    }
}

pub async fn an_order_cursor_only_serves_the_member_it_was_issued_for(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 100).await;
    for i in 0..3 {
        placed(
            &b,
            "member-1",
            vec![line(&cola, 1)],
            t0() + chrono::Duration::seconds(i),
        )
        .await;
    }
    let page = b
        .store
        .list_orders("member-1", 2, None)
        .await
        .expect("page");
    let cursor = page.next_cursor.expect("more pages");
    assert_eq!(
        b.store.list_orders("member-2", 2, Some(&cursor)).await,
        Err(Error::invalid("cursor"))
    );
    assert_eq!(
        b.store
            .list_orders("member-1", 2, Some(&cursor))
            .await
            .expect("page")
            .orders
            .len(),
        1
    );
}

pub async fn complete_payment_takes_stock_and_stores_payments(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let book = stocked(&b, "Book", 25_000, 15).await;
    let o = placed(&b, "member-1", vec![line(&cola, 3), line(&book, 1)], t0()).await;
    let payments = vec![
        payment(20_000, PaymentType::Card),
        payment(9_500, PaymentType::Point),
    ];
    let at = t0() + Duration::minutes(1);
    let done = completion(b.store.as_ref(), &o, payments.clone(), at).await;
    b.store.complete_payment(&done).await.expect("paid");

    assert_eq!(stock_of(&b, &cola.item_id).await, 7);
    assert_eq!(stock_of(&b, &book.item_id).await, 14);
    let stored = b
        .store
        .get_order(&o.order_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.status, OrderStatus::Completed);
    assert_eq!(stored.updated_at, at);
    assert_eq!(
        stored.payments, done.payments,
        "payments stored, in request order"
    );
    let history = b.store.order_history(&o.order_id).await.expect("history");
    assert_eq!(statuses(&history), ["PENDING_PAYMENT", "COMPLETED"]);
    for event in &done.events {
        assert!(b.committed(event).await);
    }
    if let Some(dynamo) = &b.dynamo {
        for p in &done.payments {
            let rows = dynamo
                .raw_partition(&format!("PAYMENT#{}", p.payment_id))
                .await
                .expect("rows");
            assert_eq!(rows.len(), 1, "one PAID history row per payment");
        }
    }
}

pub async fn a_short_line_fails_the_whole_payment(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let book = stocked(&b, "Book", 25_000, 1).await;
    let o = placed(&b, "member-1", vec![line(&cola, 3), line(&book, 2)], t0()).await;
    let done = completion(
        b.store.as_ref(),
        &o,
        vec![payment(54_500, PaymentType::Card)],
        t0(),
    )
    .await;
    assert_eq!(
        b.store.complete_payment(&done).await,
        Err(Error::OutOfStock(book.item_id.clone()))
    );
    assert_eq!(stock_of(&b, &cola.item_id).await, 10, "nothing taken");
    assert_eq!(stock_of(&b, &book.item_id).await, 1);
    let stored = b
        .store
        .get_order(&o.order_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored, o, "order untouched, no payments");
    assert_eq!(
        b.store
            .order_history(&o.order_id)
            .await
            .expect("history")
            .len(),
        1
    );
    for event in &done.events {
        assert!(!b.committed(event).await);
    }
}

pub async fn paying_needs_a_pending_order(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let o = placed(&b, "member-1", vec![line(&cola, 1)], t0()).await;
    b.store
        .complete_payment(
            &completion(
                b.store.as_ref(),
                &o,
                vec![payment(1_500, PaymentType::Card)],
                t0(),
            )
            .await,
        )
        .await
        .expect("paid");
    let twice = completion(
        b.store.as_ref(),
        &o,
        vec![payment(1_500, PaymentType::Card)],
        t0(),
    )
    .await;
    assert_eq!(
        b.store.complete_payment(&twice).await,
        Err(Error::OrderStatusConflict)
    );
    assert_eq!(stock_of(&b, &cola.item_id).await, 9, "stock taken once");
    assert_eq!(
        b.store
            .get_order(&o.order_id)
            .await
            .expect("read")
            .expect("exists")
            .payments
            .len(),
        1
    );
    assert!(!b.committed(&twice.events[0]).await);

    let ghost = order("member-1", vec![line(&cola, 1)], t0());
    assert_eq!(
        b.store
            .complete_payment(
                &completion(
                    b.store.as_ref(),
                    &ghost,
                    vec![payment(1_500, PaymentType::Card)],
                    t0()
                )
                .await
            )
            .await,
        Err(Error::NotFound("order"))
    );
}

pub async fn concurrent_payments_never_oversell(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let mut orders = Vec::new();
    for _ in 0..40 {
        orders.push(placed(&b, "member-1", vec![line(&cola, 1)], t0()).await);
    }
    let mut tasks = Vec::new();
    for o in orders {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            let done = completion(
                store.as_ref(),
                &o,
                vec![payment(1_500, PaymentType::Card)],
                t0(),
            )
            .await;
            store.complete_payment(&done).await
        }));
    }
    let mut paid = 0;
    for task in tasks {
        match task.await.expect("joined") {
            Ok(()) => paid += 1,
            Err(e) => assert_eq!(e, Error::OutOfStock(cola.item_id.clone())),
        }
    }
    assert_eq!(paid, 10, "exactly the stock is sold");
    assert_eq!(stock_of(&b, &cola.item_id).await, 0);
}

pub async fn cancelling_a_pending_order(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let o = placed(&b, "member-1", vec![line(&cola, 1)], t0()).await;
    let at = t0() + Duration::minutes(2);
    let event = order_event(EventType::OrderCancelled, &o, "CANCELLED", at);
    b.store
        .cancel_pending_order(&o.order_id, at, &event)
        .await
        .expect("cancelled");
    let stored = b
        .store
        .get_order(&o.order_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (stored.status, stored.updated_at),
        (OrderStatus::Cancelled, at)
    );
    assert!(b.committed(&event).await);
    let again = order_event(EventType::OrderCancelled, &o, "CANCELLED", at);
    assert_eq!(
        b.store.cancel_pending_order(&o.order_id, at, &again).await,
        Err(Error::OrderStatusConflict)
    );
    assert!(!b.committed(&again).await);
    assert_eq!(
        b.store.cancel_pending_order(&id(t0()), at, &again).await,
        Err(Error::NotFound("order"))
    );
    assert_eq!(
        statuses(&b.store.order_history(&o.order_id).await.expect("history")),
        ["PENDING_PAYMENT", "CANCELLED"]
    );
}

pub async fn cancelling_a_completed_order_gives_stock_back(b: Backend) {
    let cola = stocked(&b, "Cola", 1_500, 10).await;
    let o = placed(&b, "member-1", vec![line(&cola, 4)], t0()).await;
    let cancellation = |payments: Vec<Payment>, at| {
        let paid = Order {
            payments: payments.clone(),
            ..o.clone()
        };
        CompletedCancellation {
            order_id: o.order_id.clone(),
            lines: o.items.clone(),
            payments: payments
                .iter()
                .map(|p| Payment {
                    status: PaymentStatus::Canceled,
                    ..p.clone()
                })
                .collect(),
            at,
            events: vec![order_event(EventType::OrderCancelled, &o, "CANCELLED", at)],
            refund: cancel_refund_of(&paid, at),
            release: None,
        }
    };
    let early = cancellation(Vec::new(), t0());
    assert_eq!(
        b.store.cancel_completed_order(&early).await,
        Err(Error::OrderStatusConflict)
    );
    assert_eq!(
        stock_of(&b, &cola.item_id).await,
        10,
        "a pending order gives nothing back"
    );

    let payments = vec![
        payment(3_000, PaymentType::Card),
        payment(3_000, PaymentType::KakaoPay),
    ];
    let paid = completion(b.store.as_ref(), &o, payments.clone(), t0()).await;
    b.store.complete_payment(&paid).await.expect("paid");
    let payments = paid.payments.clone();
    assert_eq!(stock_of(&b, &cola.item_id).await, 6);
    assert_eq!(
        listed(&b, "member-1").await,
        vec![(OrderStatus::Completed, payments.clone())],
        "a page shows the payments, in the order they were made"
    );
    let pending_cancel = order_event(EventType::OrderCancelled, &o, "CANCELLED", t0());
    assert_eq!(
        b.store
            .cancel_pending_order(&o.order_id, t0(), &pending_cancel)
            .await,
        Err(Error::OrderStatusConflict)
    );

    let at = t0() + DAY;
    let done = cancellation(payments.clone(), at);
    b.store
        .cancel_completed_order(&done)
        .await
        .expect("cancelled");
    assert_eq!(stock_of(&b, &cola.item_id).await, 10);
    let stored = b
        .store
        .get_order(&o.order_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.status, OrderStatus::Cancelled);
    assert!(
        stored
            .payments
            .iter()
            .all(|p| p.status == PaymentStatus::Canceled)
    );
    assert_eq!(stored.payments.len(), 2);
    assert_eq!(
        listed(&b, "member-1").await,
        vec![(OrderStatus::Cancelled, stored.payments.clone())],
        "a page shows the payments cancelled"
    );
    let (with_history, history) = b
        .store
        .get_order_with_history(&o.order_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(with_history, stored, "the same order as get_order");
    assert_eq!(
        statuses(&history),
        ["PENDING_PAYMENT", "COMPLETED", "CANCELLED"]
    );
    assert_eq!(
        b.store
            .get_order_with_history(&id(t0()))
            .await
            .expect("read"),
        None
    );
    assert!(b.committed(&done.events[0]).await);
    assert_eq!(
        statuses(&b.store.order_history(&o.order_id).await.expect("history")),
        ["PENDING_PAYMENT", "COMPLETED", "CANCELLED"]
    );
    let twice = cancellation(payments.clone(), at);
    assert_eq!(
        b.store.cancel_completed_order(&twice).await,
        Err(Error::OrderStatusConflict)
    );
    assert_eq!(
        stock_of(&b, &cola.item_id).await,
        10,
        "stock given back once"
    );
    if let Some(dynamo) = &b.dynamo {
        let rows = dynamo
            .raw_partition(&format!("PAYMENT#{}", payments[0].payment_id))
            .await
            .expect("rows");
        let kinds: Vec<_> = rows
            .iter()
            .filter_map(|r| r.get("status")?.as_s().ok().cloned())
            .collect();
        assert_eq!(kinds, ["PAID", "CANCELED"]);
    }
}

/// Each order of the member's first page: its status and payments.
pub async fn listed(b: &Backend, member_id: &str) -> Vec<(OrderStatus, Vec<Payment>)> {
    b.store
        .list_orders(member_id, 10, None)
        .await
        .expect("a page")
        .orders
        .into_iter()
        .map(|o| (o.status, o.payments))
        .collect()
}
