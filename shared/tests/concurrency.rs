//! The concurrency guarantees of the contract, each scenario written once and run with the
//! in-process lock and with the Redis lock (`scripts/test.sh` starts the Redis server).
//! The scenarios take the store as a parameter, so they run over DynamoDB too.

mod order_support;

use cafe::Error;
use cafe::config::{GatewayConfig, LockConfig};
use cafe::domain::{OrderStatus, PaymentStatus};
use cafe::services::{orders, payments};
use order_support::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Runs `scenario` with the in-process lock and with the Redis lock over the memory store (and,
/// with `and_dynamodb`, with the Redis lock over DynamoDB), with the given lock and gateway
/// settings.
macro_rules! with_both_locks {
    ($scenario:ident, $lock:expr, $gateway:expr) => {
        with_both_locks!(@tests $scenario, $lock, $gateway, {});
    };
    ($scenario:ident, $lock:expr, $gateway:expr, and_dynamodb) => {
        with_both_locks!(@tests $scenario, $lock, $gateway, {
            /// The same scenario over DynamoDB (moto), with the Redis lock.
            #[tokio::test(flavor = "multi_thread")]
            async fn dynamodb_redis_lock() {
                super::$scenario(harness(
                    order_support::dynamo_store().await,
                    order_support::redis_lock($lock),
                    $gateway,
                ))
                .await;
            }
        });
    };
    (@tests $scenario:ident, $lock:expr, $gateway:expr, { $($extra:tt)* }) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn local_lock() {
                super::$scenario(harness(
                    memory_store(),
                    order_support::local_lock($lock),
                    $gateway,
                ))
                .await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn redis_lock() {
                super::$scenario(harness(
                    memory_store(),
                    order_support::redis_lock($lock),
                    $gateway,
                ))
                .await;
            }

            $($extra)*
        }
    };
}

fn default_lock() -> LockConfig {
    lock_config(10_000, 2_000)
}

/// Pays, retrying while the lock is busy (what a client told 409PA001 does).
async fn pay_retrying_busy(
    h: &Harness,
    member: &cafe::domain::Member,
    request: &payments::PaymentRequest,
) -> cafe::Result<payments::PaymentReceipt> {
    loop {
        match payments::pay(&h.app, &member.member_id, request).await {
            Err(Error::LockBusy) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return other,
        }
    }
}

/// Samples an item's stock until told to stop; returns the lowest value seen.
fn sample_stock(
    h: Arc<Harness>,
    item_id: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let lowest = AtomicI64::new(i64::MAX);
        while !stop.load(Ordering::SeqCst) {
            lowest.fetch_min(h.stock(&item_id).await, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lowest.fetch_min(h.stock(&item_id).await, Ordering::SeqCst);
        lowest.load(Ordering::SeqCst)
    })
}

async fn fifty_payers_of_one_order(h: Arc<Harness>) {
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;
    let request = card(&order_id, total);

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, member, request) = (h.clone(), member.clone(), request.clone());
            tokio::spawn(async move { payments::pay(&h.app, &member.member_id, &request).await })
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(receipt) => {
                successes += 1;
                assert_eq!(receipt.status, OrderStatus::Completed);
            }
            Err(Error::OrderStatusConflict | Error::LockBusy) => {}
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(successes, 1);
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Completed);
    assert_eq!(h.stock(&item.item_id).await, 8);
    let (_, _, kept) = h.gateway.counts(&order_id);
    assert_eq!(kept, 1, "exactly one charge stays unrefunded");
}
with_both_locks!(
    fifty_payers_of_one_order,
    default_lock(),
    quick_gateway(),
    and_dynamodb
);

async fn two_hundred_orders_for_a_stock_of_one_hundred(h: Arc<Harness>) {
    let item = h.item(1_000, 100).await;
    let buyers: Vec<_> = futures_free_join((0..20).map(|_| h.member())).await;
    let mut orders = Vec::new();
    for i in 0..200 {
        let member = buyers[i % buyers.len()].clone();
        let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
        orders.push((member, order_id, total));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_stock(h.clone(), item.item_id.clone(), stop.clone());

    let tasks: Vec<_> = orders
        .iter()
        .cloned()
        .map(|(member, order_id, total)| {
            let h = h.clone();
            tokio::spawn(
                async move { pay_retrying_busy(&h, &member, &card(&order_id, total)).await },
            )
        })
        .collect();
    let mut sold = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => sold += 1,
            Err(Error::OutOfStock(_)) => {}
            Err(other) => panic!("unexpected answer {other:?} (no 5xx allowed)"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let lowest = sampler.await.expect("sampler");

    assert_eq!(sold, 100);
    assert_eq!(h.stock(&item.item_id).await, 0);
    assert!(lowest >= 0, "stock went negative: {lowest}");
    let mut completed = 0;
    for (_, order_id, _) in &orders {
        if h.order_status(order_id).await == OrderStatus::Completed {
            completed += 1;
        }
    }
    assert_eq!(completed, 100);
    let ledger = h.gateway.ledger();
    assert_eq!(ledger.charges.len() - ledger.refunds.len(), 100);
    assert_eq!(ledger.net_charges().len(), 100);
}
with_both_locks!(
    two_hundred_orders_for_a_stock_of_one_hundred,
    lock_config(10_000, 5_000),
    GatewayConfig {
        max_latency: Duration::from_millis(1),
        ..quick_gateway()
    }
);

/// Runs futures one after the other (set-up only; keeps the test free of extra crates).
async fn futures_free_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut out = Vec::new();
    for future in futures {
        out.push(future.await);
    }
    out
}

/// The lock expires while its holder is still at the gateway: others get in and charge too, but
/// the conditional write lets only the stock's worth complete and every loser is refunded.
async fn a_holder_that_outlives_its_lock_cannot_oversell(h: Arc<Harness>) {
    let item = h.item(1_000, 5).await;
    let member = h.member().await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(h.order(&member, &[(&item.item_id, 1)]).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_stock(h.clone(), item.item_id.clone(), stop.clone());
    let tasks: Vec<_> = orders
        .iter()
        .cloned()
        .map(|(order_id, total)| {
            let (h, member) = (h.clone(), member.clone());
            tokio::spawn(
                async move { pay_retrying_busy(&h, &member, &card(&order_id, total)).await },
            )
        })
        .collect();
    let mut sold = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => sold += 1,
            Err(Error::OutOfStock(_)) => {}
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(sampler.await.expect("sampler") >= 0);
    assert_eq!(sold, 5);
    assert_eq!(h.stock(&item.item_id).await, 0);
    let ledger = h.gateway.ledger();
    assert_eq!(
        ledger.net_charges().len(),
        5,
        "every losing charge was refunded"
    );
    assert!(
        !ledger.refunds.is_empty(),
        "no holder outlived its lock: the scenario did not happen"
    );
    for (order_id, _) in &orders {
        let (_, _, kept) = h.gateway.counts(order_id);
        let completed = h.order_status(order_id).await == OrderStatus::Completed;
        assert_eq!(kept, usize::from(completed), "order {order_id}");
    }
}
with_both_locks!(
    a_holder_that_outlives_its_lock_cannot_oversell,
    lock_config(5, 2_000),
    GatewayConfig {
        min_latency: Duration::from_millis(30),
        max_latency: Duration::from_millis(60),
        failure_rate: 0.0,
        drop_rate: 0.0,
    },
    and_dynamodb
);

/// 30% of gateway calls fail: each failure leaves its order pending with nothing charged and the
/// stock untouched; a retry then succeeds.
async fn a_failing_gateway_changes_nothing_and_a_retry_succeeds(h: Arc<Harness>) {
    let item = h.item(1_000, 100).await;
    let member = h.member().await;
    let mut orders = Vec::new();
    for _ in 0..30 {
        orders.push(h.order(&member, &[(&item.item_id, 1)]).await);
    }
    let tasks: Vec<_> = orders
        .iter()
        .cloned()
        .map(|(order_id, total)| {
            let (h, member) = (h.clone(), member.clone());
            tokio::spawn(async move {
                let outcome = pay_retrying_busy(&h, &member, &card(&order_id, total)).await;
                (order_id, total, outcome)
            })
        })
        .collect();
    let mut failed = Vec::new();
    let mut sold = 0;
    for task in tasks {
        let (order_id, total, outcome) = task.await.expect("task");
        match outcome {
            Ok(_) => sold += 1,
            Err(Error::GatewayFailed) => failed.push((order_id, total)),
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        !failed.is_empty(),
        "a 30% failure rate over 30 payments failed none"
    );
    assert_eq!(h.stock(&item.item_id).await, 100 - sold);
    for (order_id, _) in &failed {
        assert_eq!(h.order_status(order_id).await, OrderStatus::PendingPayment);
        assert_eq!(
            h.gateway.counts(order_id).2,
            0,
            "a failed payment kept a charge"
        );
    }
    for (order_id, total) in &failed {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match pay_retrying_busy(&h, &member, &card(order_id, *total)).await {
                Ok(_) => break,
                Err(Error::GatewayFailed) if attempts < 40 => {}
                Err(other) => panic!("retry failed: {other:?}"),
            }
        }
    }
    assert_eq!(h.stock(&item.item_id).await, 70);
    assert_eq!(h.gateway.ledger().net_charges().len(), 30);
}
with_both_locks!(
    a_failing_gateway_changes_nothing_and_a_retry_succeeds,
    default_lock(),
    GatewayConfig {
        failure_rate: 0.3,
        ..quick_gateway()
    }
);

/// Cancelling a paid order refunds each payment once and gives the stock back, even with ten
/// cancels racing; cancelling again → 400OR001.
async fn cancelling_a_paid_order_refunds_once(h: Arc<Harness>) {
    let member = h.member().await;
    let item = h.item(2_000, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 3)]).await;
    let request = parts(
        &order_id,
        &[
            (total - 1_000, cafe::domain::PaymentType::Card),
            (1_000, cafe::domain::PaymentType::Point),
        ],
    );
    payments::pay(&h.app, &member.member_id, &request)
        .await
        .expect("paid");
    assert_eq!(h.stock(&item.item_id).await, 7);

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (h, member, order_id) = (h.clone(), member.clone(), order_id.clone());
            tokio::spawn(async move { orders::cancel_order(&h.app, &member, &order_id).await })
        })
        .collect();
    let mut cancelled = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(answer) => {
                cancelled += 1;
                assert_eq!(answer.status, OrderStatus::Cancelled);
            }
            Err(Error::OrderStatusConflict | Error::LockBusy) => {}
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(cancelled, 1);
    assert_eq!(h.stock(&item.item_id).await, 10);
    assert_eq!(h.gateway.counts(&order_id), (2, 2, 0));
    assert_eq!(
        h.gateway.ledger().refunds.len(),
        2,
        "each payment refunded once"
    );
    let order = orders::get_order(&h.app, &member, &order_id)
        .await
        .expect("order");
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(
        order
            .payments
            .iter()
            .all(|p| p.status == PaymentStatus::Canceled)
    );

    assert_eq!(
        orders::cancel_order(&h.app, &member, &order_id).await,
        Err(Error::OrderStatusConflict)
    );
    assert_eq!(h.gateway.ledger().refunds.len(), 2);
    assert_eq!(h.stock(&item.item_id).await, 10);
}
with_both_locks!(
    cancelling_a_paid_order_refunds_once,
    default_lock(),
    quick_gateway(),
    and_dynamodb
);

/// The same `Idempotency-Key` 20 times at once, then 20 times more: one charge; every answer is
/// the first one verbatim, or 409PA002 while it was still running.
async fn one_idempotency_key_charges_once(h: Arc<Harness>) {
    let member = h.member().await;
    let item = h.item(4_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;
    let request = card(&order_id, total);
    let key = "retry-safe-7f3c9a52";

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (h, member, request) = (h.clone(), member.clone(), request.clone());
            tokio::spawn(async move {
                payments::pay_once(&h.app, &member.member_id, &request, Some(key))
                    .await
                    .to_stored()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let successes: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(!successes.is_empty());
    let first = successes[0].clone();
    for answer in &answers {
        if answer.status == 200 {
            assert_eq!(answer, &first);
        } else {
            assert_eq!(answer.status, 409);
            assert!(answer.body.contains("409PA002"), "{}", answer.body);
        }
    }
    for _ in 0..20 {
        let later = payments::pay_once(&h.app, &member.member_id, &request, Some(key))
            .await
            .to_stored();
        assert_eq!(later, first);
    }
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1));
    assert_eq!(h.stock(&item.item_id).await, 8);
    let body: serde_json::Value = serde_json::from_str(&first.body).expect("json");
    assert_eq!(body["result"]["status"], "COMPLETED");
    assert_eq!(body["result"]["orderId"], order_id.as_str());
}
with_both_locks!(
    one_idempotency_key_charges_once,
    default_lock(),
    quick_gateway(),
    and_dynamodb
);

/// A request whose idempotency record is taken over (it stalled past the 60 s lease before it
/// charged) must neither charge nor touch its successor's record: one charge, and the key ends
/// with the successor's answer, whichever of the two gets the lock first.
async fn a_taken_over_key_charges_once_and_keeps_the_successor_s_answer(h: Arc<Harness>) {
    let member = h.member().await;
    let item = h.item(4_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
    let request = card(&order_id, total);
    let key = "stalled-then-taken-over";
    // The successor runs 61 s later, on a clock of its own; the store, lock and gateway are
    // the same.
    let later = cafe::App::with_store_and_gateway(
        h.app.config.clone(),
        Arc::new(cafe::clock::ManualClock::new(
            h.app.clock.now() + chrono::Duration::seconds(61),
        )),
        h.app.store.clone(),
        h.app.lock.clone(),
        h.app.gateway.clone(),
    )
    .expect("app");
    let later = Arc::new(later);

    // Both wait on the order's lock, held here, so that the first request stalls after
    // starting its record and before charging.
    let held = h
        .app
        .lock
        .acquire(&[cafe::lock::order_key(&order_id)])
        .await
        .expect("lock");
    let first = {
        let (h, member, request) = (h.clone(), member.clone(), request.clone());
        tokio::spawn(async move {
            payments::pay_once(&h.app, &member.member_id, &request, Some(key))
                .await
                .to_stored()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = {
        let (later, member, request) = (later.clone(), member.clone(), request.clone());
        tokio::spawn(async move {
            payments::pay_once(&later, &member.member_id, &request, Some(key))
                .await
                .to_stored()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.app.lock.release(&held).await.expect("released");
    let (first, second) = (first.await.expect("first"), second.await.expect("second"));

    assert_eq!(second.status, 200, "the successor pays: {}", second.body);
    assert!(
        (first.status == 409 && first.body.contains("409PA002"))
            || (first.status == 400 && first.body.contains("400OR001")),
        "the stalled request charges nothing: {first:?}"
    );
    assert_eq!(h.gateway.counts(&order_id), (1, 0, 1), "one charge");
    // The record holds the successor's answer, not the stalled request's late one.
    let replay = payments::pay_once(&later, &member.member_id, &request, Some(key))
        .await
        .to_stored();
    assert_eq!(replay, second);
    assert_eq!(h.stock(&item.item_id).await, 9);
}
with_both_locks!(
    a_taken_over_key_charges_once_and_keeps_the_successor_s_answer,
    lock_config(10_000, 8_000),
    quick_gateway(),
    and_dynamodb
);

/// Staff restock while 200 payers buy: `ADD` adds to the stock as it is at the write, so no sale
/// and no delivery is lost. Ten deliveries of 10 race 200 single-unit payments of a stock of 100;
/// afterwards stock + sold = initial + restocked, and the stock never went below zero. On the
/// memory store with both locks, like the 200-payer scenario above (on moto, serialised, 200
/// payers exceed the payment's time budget: the DynamoDB conditions of a stock change are
/// covered by the store suite and the IAM and emulator runs).
async fn restock_racing_two_hundred_payers(h: Arc<Harness>) {
    use cafe::domain::Role;
    use cafe::domain::item::StockMode;
    use cafe::services::staff;
    let item = h.item(1_000, 100).await;
    let mut clerk = h.member().await;
    clerk.role = Role::Staff;
    let buyers: Vec<_> = futures_free_join((0..20).map(|_| h.member())).await;
    let mut orders = Vec::new();
    for i in 0..200 {
        let member = buyers[i % buyers.len()].clone();
        let (order_id, total) = h.order(&member, &[(&item.item_id, 1)]).await;
        orders.push((member, order_id, total));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_stock(h.clone(), item.item_id.clone(), stop.clone());
    let payers: Vec<_> = orders
        .iter()
        .cloned()
        .map(|(member, order_id, total)| {
            let h = h.clone();
            tokio::spawn(
                async move { pay_retrying_busy(&h, &member, &card(&order_id, total)).await },
            )
        })
        .collect();
    let restocker = {
        let (h, clerk, item_id) = (h.clone(), clerk.clone(), item.item_id.clone());
        tokio::spawn(async move {
            let mut added = 0;
            let mut conflicts = 0;
            while added < 100 {
                let version = h
                    .app
                    .store
                    .get_item(&item_id)
                    .await
                    .expect("read")
                    .expect("item")
                    .version;
                let request = staff::StockRequest {
                    mode: StockMode::Add,
                    quantity: 10,
                    reason: "delivery".into(),
                    version,
                };
                match staff::change_stock(&h.app, &clerk, &item_id, &request).await {
                    Ok(_) => added += 10,
                    Err(Error::VersionConflict) => conflicts += 1,
                    Err(other) => panic!("restock failed: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (added, conflicts)
        })
    };
    let mut sold = 0;
    for task in payers {
        match task.await.expect("task") {
            Ok(_) => sold += 1,
            Err(Error::OutOfStock(_)) => {}
            Err(other) => panic!("unexpected answer {other:?} (no 5xx allowed)"),
        }
    }
    let (restocked, _) = restocker.await.expect("restocker");
    stop.store(true, Ordering::SeqCst);
    let lowest = sampler.await.expect("sampler");
    let stock = h.stock(&item.item_id).await;
    assert_eq!(restocked, 100);
    assert_eq!(stock + sold, 100 + restocked, "stock {stock}, sold {sold}");
    assert!(sold >= 100, "at least the initial stock sold: {sold}");
    assert!(lowest >= 0, "stock went negative: {lowest}");
    let ledger = h.gateway.ledger();
    assert_eq!(ledger.net_charges().len() as i64, sold);
    let stored = h
        .app
        .store
        .get_item(&item.item_id)
        .await
        .expect("read")
        .expect("item");
    assert_eq!(stored.version, 10, "one version per delivery");
}
with_both_locks!(
    restock_racing_two_hundred_payers,
    lock_config(10_000, 5_000),
    GatewayConfig {
        max_latency: Duration::from_millis(1),
        ..quick_gateway()
    }
);
