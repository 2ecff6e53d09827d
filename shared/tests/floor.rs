//! The cafe floor under fire (`docs/floor.md`): pickup numbers raced by 500 payers, the capacity
//! fence raced by 200 payers for 20 slots (nobody refused is charged), the per-member limit,
//! slots given back by `READY`, a cancellation and a declined card, the shop closed, the payment
//! window — on memory, and on DynamoDB (moto) with the Redis lock.

mod order_support;

use cafe::Error;
use cafe::config::FloorConfig;
use cafe::domain::{Member, OrderStatus, Role};
use cafe::services::floor::{self, ShopRequest};
use cafe::services::orders::{CreateOrderRequest, LineRequest};
use cafe::services::payments;
use cafe::services::staff::{self, FulfilmentRequest};
use order_support::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

fn limits(max_in_progress: i64, max_open_per_member: i64) -> FloorConfig {
    FloorConfig {
        max_in_progress,
        max_open_per_member,
        ..FloorConfig::default()
    }
}

/// Members, and one pending order of one unit per payer (over `items` items, so the stock
/// writes of the race do not all hit one item).
async fn pending_orders(
    h: &Harness,
    payers: usize,
    members: usize,
    items: usize,
) -> Vec<(Member, String, i64)> {
    let mut people = Vec::new();
    for _ in 0..members {
        people.push(h.member().await);
    }
    let mut stock = Vec::new();
    for _ in 0..items {
        stock.push(h.item(1_500, 10_000).await);
    }
    let mut orders = Vec::new();
    for n in 0..payers {
        let member = people[n % members].clone();
        let (order_id, total) = h.order(&member, &[(&stock[n % items].item_id, 1)]).await;
        orders.push((member, order_id, total));
    }
    orders
}

/// Every payer pays at once (at most `in_flight` at a time); each answer as `Ok(pickup number)`
/// or the error.
async fn pay_all(
    h: &Arc<Harness>,
    orders: &[(Member, String, i64)],
    in_flight: usize,
) -> Vec<(String, Result<Option<u32>, Error>)> {
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut payers = tokio::task::JoinSet::new();
    for (member, order_id, total) in orders.iter().cloned() {
        let (h, permits) = (h.clone(), permits.clone());
        payers.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("permit");
            let answer = payments::pay(&h.app, &member.member_id, &card(&order_id, total)).await;
            (order_id, answer.map(|receipt| receipt.pickup_number))
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = payers.join_next().await {
        answers.push(done.expect("payer"));
    }
    answers
}

async fn numbers_race(h: Arc<Harness>, payers: usize, in_flight: usize) {
    let orders = pending_orders(&h, payers, 50, 10).await;
    let started = Instant::now();
    let answers = pay_all(&h, &orders, in_flight).await;
    let took = started.elapsed();
    let mut numbers = BTreeSet::new();
    for (order_id, answer) in &answers {
        let number = answer
            .clone()
            .unwrap_or_else(|e| panic!("{order_id}: {e}"))
            .expect("a pickup number");
        assert!(numbers.insert(number), "number {number} given twice");
        // The order keeps the number its payment answered.
        let stored = h
            .app
            .store
            .get_order(order_id)
            .await
            .expect("read")
            .expect("order");
        assert_eq!(stored.pickup_number, Some(number));
        assert!(stored.paid_at.is_some());
    }
    assert_eq!(numbers.len(), payers);
    // Nobody failed after taking a number here, so there is no gap either.
    assert_eq!(numbers.iter().copied().max(), Some(payers as u32));
    eprintln!("{payers} payers: {payers} distinct pickup numbers in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_payers_get_five_hundred_distinct_numbers_on_memory() {
    let h = harness(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
    );
    numbers_race(h, 500, 200).await;
}

/// The races on moto one at a time: moto answers one request at a time, and a payment queued
/// behind hundreds of others runs out of its time budget before it charges.
static MOTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_payers_get_a_hundred_distinct_numbers_on_dynamodb() {
    let _moto = MOTO.lock().await;
    let h = harness(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
    );
    // Scaled down on moto: it holds every table in memory and copies them all on each
    // transaction; 500 whole payments (with their members, items and orders) ran it out of
    // memory. The counter itself is raced 500-wide below.
    numbers_race(h, 100, 40).await;
}

/// The counter every pickup number comes from, raced by 500 takers at once on moto: 500
/// distinct numbers, 1 to 500; another day starts at 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_takers_get_five_hundred_distinct_numbers_on_dynamodb() {
    let _moto = MOTO.lock().await;
    let store = dynamo_store().await;
    let started = Instant::now();
    // 50 in flight at a time: moto serves one request at a time, and 500 queued at once wait
    // past the client's 3 s timeout.
    let permits = Arc::new(Semaphore::new(50));
    let mut takers = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let (store, permits) = (store.clone(), permits.clone());
        takers.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("permit");
            store.take_pickup_number("2026-12-06").await
        });
    }
    let mut numbers = BTreeSet::new();
    while let Some(done) = takers.join_next().await {
        let number = done.expect("taker").expect("number");
        assert!(numbers.insert(number), "number {number} given twice");
    }
    let took = started.elapsed();
    assert_eq!(numbers, (1..=500).collect::<BTreeSet<u32>>());
    assert_eq!(store.take_pickup_number("2026-12-07").await, Ok(1));
    eprintln!("500 concurrent takers on moto: 1..=500 in {took:?}");
}

/// `payers` payers (each their own member) against room for `room`: exactly `room` paid, every
/// other refused 409SH001 with `Retry-After`, and the gateway charged exactly the paid ones.
async fn capacity_race(h: Arc<Harness>, payers: usize, room: i64, in_flight: usize) {
    let orders = pending_orders(&h, payers, payers, 10).await;
    let started = Instant::now();
    let answers = pay_all(&h, &orders, in_flight).await;
    let took = started.elapsed();
    let mut paid = BTreeSet::new();
    let mut refused = 0;
    for (order_id, answer) in &answers {
        match answer {
            Ok(_) => {
                paid.insert(order_id.clone());
            }
            Err(error @ Error::ShopFull(_)) => {
                let wire = error.wire();
                assert_eq!((wire.status.as_u16(), wire.code), (409, "409SH001"));
                assert!(wire.retry_after.is_some_and(|s| s >= 1));
                refused += 1;
            }
            Err(other) => panic!("{order_id}: unexpected {other}"),
        }
    }
    assert_eq!(paid.len() as i64, room, "exactly the room is paid");
    assert_eq!(refused, payers - paid.len());
    // Nobody refused was charged: the ledger holds one charge per paid order, and no refund.
    let ledger = h.gateway.ledger();
    let charged: BTreeSet<String> = ledger.charges.iter().map(|c| c.order_id.clone()).collect();
    assert_eq!(charged, paid, "charged = paid");
    assert_eq!(ledger.charges.len(), paid.len());
    assert!(ledger.refunds.is_empty());
    for (_, order_id, _) in &orders {
        let expected = if paid.contains(order_id) {
            OrderStatus::Completed
        } else {
            OrderStatus::PendingPayment
        };
        assert_eq!(h.order_status(order_id).await, expected);
    }
    let shop = floor::shop(&h.app).await.expect("shop");
    assert_eq!((shop.orders_in_progress, shop.room), (room, 0));
    eprintln!(
        "{payers} payers for {room} slots: {room} paid, {refused} refused uncharged, in {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_payers_for_twenty_slots_on_memory() {
    let h = harness_with(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(20, 3),
    );
    capacity_race(h, 200, 20, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_payers_for_six_slots_on_dynamodb_with_the_redis_lock() {
    let _moto = MOTO.lock().await;
    let h = harness_with(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(6, 3),
    );
    // Scaled down on moto (one request at a time; a payer queued too long runs out of its
    // time budget before charging): 60 payers for 6 slots, 20 at a time.
    capacity_race(h, 60, 6, 20).await;
}

async fn staff_member(h: &Harness) -> Member {
    let mut member = h.member().await;
    member.role = Role::Staff;
    member
}

async fn step(h: &Harness, staff: &Member, order_id: &str, status: &str) {
    staff::advance_order(
        &h.app,
        staff,
        order_id,
        &FulfilmentRequest {
            status: status.into(),
        },
    )
    .await
    .expect("fulfilment step");
}

/// One member, five orders paid at once, a limit of three: three paid, two refused 409SH002
/// uncharged; a slot comes back when staff make one `READY` (with its make time counted), when
/// one is cancelled, and when a card is declined.
async fn member_limit_and_released_slots(h: Arc<Harness>) {
    let orders = pending_orders(&h, 5, 1, 1).await;
    let answers = pay_all(&h, &orders, 5).await;
    let paid: Vec<&String> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(paid.len(), 3, "{answers:?}");
    for (_, answer) in answers.iter().filter(|(_, a)| a.is_err()) {
        let wire = answer.as_ref().expect_err("refused").wire();
        assert_eq!((wire.status.as_u16(), wire.code), (409, "409SH002"));
        assert!(wire.retry_after.is_some());
    }
    assert_eq!(h.gateway.ledger().charges.len(), 3);
    let member = &orders[0].0;
    assert_eq!(h.app.store.open_orders_of(&member.member_id).await, Ok(3));
    let waiting: Vec<(String, i64)> = orders
        .iter()
        .filter(|(_, id, _)| !paid.contains(&id))
        .map(|(_, id, total)| (id.clone(), *total))
        .collect();
    let pay = |n: usize| {
        let (h, member_id) = (h.clone(), member.member_id.clone());
        let (order_id, total) = waiting[n].clone();
        async move { payments::pay(&h.app, &member_id, &card(&order_id, total)).await }
    };

    // Their places in the queue: 0, 1 and 2 ahead, in the order they were placed.
    let mut ahead = Vec::new();
    for id in &paid {
        ahead.push(h.app.store.orders_ahead(id).await.expect("ahead"));
    }
    ahead.sort_unstable();
    assert_eq!(ahead, [0, 1, 2]);

    // Made: PREPARING does not free the slot, READY does.
    let staff = staff_member(&h).await;
    step(&h, &staff, paid[0], "PREPARING").await;
    assert!(matches!(pay(0).await, Err(Error::TooManyOpenOrders(_))));
    step(&h, &staff, paid[0], "READY").await;
    let fourth = pay(0).await.expect("a slot came back");
    assert!(fourth.pickup_number.is_some());
    let shop = floor::shop(&h.app).await.expect("shop");
    assert_eq!((shop.orders_in_progress, shop.made_today), (3, 1));

    // Cancelled: the slot comes back with the refund.
    let cancelled = cafe::services::orders::cancel_order(&h.app, member, paid[1])
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(h.app.store.open_orders_of(&member.member_id).await, Ok(2));

    // Declined: the attempt's slot is given back with the (nothing) refunded.
    h.gateway.fail_charge_call(1);
    assert_eq!(pay(1).await.map(|_| ()), Err(Error::GatewayFailed));
    assert_eq!(h.app.store.open_orders_of(&member.member_id).await, Ok(2));
    pay(1).await.expect("paid after the decline");
    assert_eq!(h.app.store.open_orders_of(&member.member_id).await, Ok(3));
    let shop = floor::shop(&h.app).await.expect("shop");
    assert_eq!(shop.orders_in_progress, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_member_limit_and_every_slot_release_on_memory() {
    let h = harness_with(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(20, 3),
    );
    member_limit_and_released_slots(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_member_limit_and_every_slot_release_on_dynamodb() {
    let h = harness_with(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(20, 3),
    );
    member_limit_and_released_slots(h).await;
}

/// Closed: paying and ordering are refused 409SH000 with the message, nothing charged; an order
/// already paid is still made; open again, everything works.
async fn closed_shop(h: Arc<Harness>) {
    let orders = pending_orders(&h, 2, 1, 1).await;
    let (member, first, total) = &orders[0];
    payments::pay(&h.app, &member.member_id, &card(first, *total))
        .await
        .expect("paid while open");
    let staff = staff_member(&h).await;
    let closed = floor::set_shop(
        &h.app,
        &staff,
        &ShopRequest {
            open: false,
            message: Some("Back at 2pm".into()),
        },
    )
    .await
    .expect("closed");
    assert!(!closed.open);
    let (_, second, total) = &orders[1];
    let refused = payments::pay(&h.app, &member.member_id, &card(second, *total)).await;
    assert_eq!(
        refused.map(|_| ()),
        Err(Error::ShopClosed(Some("Back at 2pm".into())))
    );
    let wire = Error::ShopClosed(Some("Back at 2pm".into())).wire();
    assert_eq!((wire.status.as_u16(), wire.code), (409, "409SH000"));
    assert!(wire.message.contains("Back at 2pm"));
    assert_eq!(
        h.gateway.ledger().charges.len(),
        1,
        "nothing charged while closed"
    );
    let item = h.item(1_500, 10).await;
    let ordering = cafe::services::orders::create_order(
        &h.app,
        &member.member_id,
        &CreateOrderRequest {
            items: vec![LineRequest {
                item_id: item.item_id.clone(),
                quantity: 1,
            }],
        },
    )
    .await;
    assert!(
        matches!(ordering, Err(Error::ShopClosed(_))),
        "{ordering:?}"
    );
    // The paid order is still made.
    step(&h, &staff, first, "PREPARING").await;
    step(&h, &staff, first, "READY").await;
    floor::set_shop(
        &h.app,
        &staff,
        &ShopRequest {
            open: true,
            message: None,
        },
    )
    .await
    .expect("open");
    payments::pay(&h.app, &member.member_id, &card(second, *total))
        .await
        .expect("paid once open");
    let shop = floor::shop(&h.app).await.expect("shop");
    assert!(shop.open && shop.message.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_shop_takes_no_orders_and_no_money_on_memory() {
    let h = harness_with(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(20, 3),
    );
    closed_shop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_shop_takes_no_orders_and_no_money_on_dynamodb() {
    let h = harness_with(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        limits(20, 3),
    );
    closed_shop(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_past_its_payment_window_cannot_be_paid() {
    let h = harness_with(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
        FloorConfig {
            payment_window: chrono::Duration::seconds(1),
            ..limits(20, 3)
        },
    );
    let orders = pending_orders(&h, 1, 1, 1).await;
    let (member, order_id, total) = &orders[0];
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let answer = payments::pay(&h.app, &member.member_id, &card(order_id, *total)).await;
    assert_eq!(answer.map(|_| ()), Err(Error::PaymentWindowPassed));
    let wire = Error::PaymentWindowPassed.wire();
    assert_eq!((wire.status.as_u16(), wire.code), (400, "400OR003"));
    assert!(h.gateway.ledger().charges.is_empty());
}

/// The sweep: pending orders past the window become `EXPIRED` (history row, event), paid and
/// cancelled ones are left alone, a second run finds nothing, and an expired order is refused
/// 400OR003 without a charge.
async fn unpaid_orders_expire(h: Arc<Harness>) {
    let orders = pending_orders(&h, 4, 1, 1).await;
    let member = &orders[0].0;
    let (_, paid, total) = &orders[0];
    payments::pay(&h.app, &member.member_id, &card(paid, *total))
        .await
        .expect("paid");
    cafe::services::orders::cancel_order(&h.app, member, &orders[1].1)
        .await
        .expect("cancelled");
    let window = chrono::Duration::minutes(15);
    let now = h.app.clock.now();
    // Nothing is due yet.
    let early = floor::expire_unpaid(h.app.store.as_ref(), now, window, None)
        .await
        .expect("sweep");
    assert_eq!((early.expired, early.complete), (0, true));
    let later = now + chrono::Duration::minutes(16);
    let sweep = floor::expire_unpaid(h.app.store.as_ref(), later, window, None)
        .await
        .expect("sweep");
    assert_eq!((sweep.expired, sweep.failed, sweep.complete), (2, 0, true));
    for (_, order_id, _) in &orders[2..] {
        assert_eq!(h.order_status(order_id).await, OrderStatus::Expired);
        let history = h.app.store.order_history(order_id).await.expect("history");
        let statuses: Vec<&str> = history.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(statuses, ["PENDING_PAYMENT", "EXPIRED"]);
    }
    assert_eq!(h.order_status(paid).await, OrderStatus::Completed);
    assert_eq!(h.order_status(&orders[1].1).await, OrderStatus::Cancelled);
    let again = floor::expire_unpaid(h.app.store.as_ref(), later, window, None)
        .await
        .expect("sweep");
    assert_eq!(again.expired, 0);
    let (_, expired, total) = &orders[2];
    let refused = payments::pay(&h.app, &member.member_id, &card(expired, *total)).await;
    assert_eq!(refused.map(|_| ()), Err(Error::PaymentWindowPassed));
    assert_eq!(h.gateway.ledger().charges.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaid_orders_expire_on_memory() {
    let h = harness(
        memory_store(),
        local_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
    );
    unpaid_orders_expire(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaid_orders_expire_on_dynamodb() {
    let h = harness(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 5_000)),
        quick_gateway(),
    );
    unpaid_orders_expire(h).await;
}

/// `SHOP_TIMEZONE` and the limits as the environment gives them; a zone with daylight saving
/// time, or a limit of 0, is a start-up error rather than a silently wrong day or a shop that
/// takes nothing.
#[test]
fn the_floor_settings_are_read_and_checked() {
    use cafe::config::{Config, TokenKey, parse_timezone};
    let read = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(TokenKey::NotUsed, &move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    };
    let defaults = read(&[]).expect("defaults").floor;
    assert_eq!(defaults.timezone.local_minus_utc(), 9 * 3600);
    assert_eq!(
        (defaults.max_in_progress, defaults.max_open_per_member),
        (20, 3)
    );
    assert_eq!(defaults.payment_window, chrono::Duration::minutes(15));
    let set = read(&[
        ("SHOP_TIMEZONE", "-05:30"),
        ("SHOP_MAX_IN_PROGRESS", "8"),
        ("SHOP_MAX_OPEN_PER_MEMBER", "1"),
        ("ORDER_PAYMENT_WINDOW", "300"),
    ])
    .expect("set")
    .floor;
    assert_eq!(set.timezone.local_minus_utc(), -(5 * 3600 + 1800));
    assert_eq!((set.max_in_progress, set.max_open_per_member), (8, 1));
    assert_eq!(set.payment_window, chrono::Duration::minutes(5));
    for bad in [
        ("SHOP_TIMEZONE", "Europe/Paris"),
        ("SHOP_TIMEZONE", "+9"),
        ("SHOP_TIMEZONE", "+15:00"),
        ("SHOP_MAX_IN_PROGRESS", "0"),
        ("SHOP_MAX_OPEN_PER_MEMBER", "-1"),
        ("ORDER_PAYMENT_WINDOW", "soon"),
    ] {
        assert!(read(&[bad]).is_err(), "{bad:?} accepted");
    }
    assert_eq!(parse_timezone("UTC").map(|z| z.local_minus_utc()), Some(0));
    assert_eq!(
        parse_timezone("Asia/Kolkata").map(|z| z.local_minus_utc()),
        Some(5 * 3600 + 1800)
    );
}
