//! Money under fire: thousands of payments raced over a few hot items, with a gateway that
//! declines or loses the answer to 30% of its calls and answers in 0–50 ms. Every payer retries
//! under its own `Idempotency-Key`, as a client does; then the reconciler settles what the
//! payers left. Afterwards nothing is oversold, no order holds two kept charges, and the ledger
//! holds exactly the totals of the completed orders — on memory (10,000 payments) and on
//! DynamoDB (moto, 100: every moto transaction deep-copies every table it holds, so its cost
//! grows with the data of the whole run), with the Redis lock.

mod order_support;

use cafe::Error;
use cafe::config::GatewayConfig;
use cafe::domain::OrderStatus;
use cafe::services::payments::{self, PaymentAnswer};
use cafe::services::reconcile::{ReconcileOptions, run_reconcile};
use cafe::store::ATTEMPT_SHARDS;
use order_support::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// 20% declined, 10% charged with the answer lost: 30% of calls fail, in both ways a real
/// gateway fails.
fn flaky_gateway() -> GatewayConfig {
    GatewayConfig {
        min_latency: Duration::ZERO,
        max_latency: Duration::from_millis(50),
        failure_rate: 0.2,
        drop_rate: 0.1,
    }
}

/// A client's retry policy: the same key, a few times, on the answers that invite a retry.
const TRIES: usize = 6;

async fn race(h: Arc<Harness>, items: usize, payments_per_item: usize, stock: i64) {
    let members: Vec<_> = futures_members(&h, 50).await;
    let mut hot = Vec::new();
    for _ in 0..items {
        hot.push(h.item(1_000, stock).await);
    }
    // Every payer's own pending order of one unit of one hot item.
    let mut orders = Vec::new();
    for n in 0..items * payments_per_item {
        let member = &members[n % members.len()];
        let item = &hot[n % items];
        let (order_id, total) = h.order(member, &[(&item.item_id, 1)]).await;
        orders.push((member.clone(), n % items, order_id, total));
    }

    let permits = Arc::new(Semaphore::new(200));
    let mut payers = tokio::task::JoinSet::new();
    for (n, (member, _, order_id, total)) in orders.iter().cloned().enumerate() {
        let (h, permits) = (h.clone(), permits.clone());
        payers.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("permit");
            let key = format!("race-{n}");
            let request = card(&order_id, total);
            for _ in 0..TRIES {
                let answer =
                    payments::pay_once(&h.app, &member.member_id, &request, Some(&key)).await;
                let status = match &answer {
                    PaymentAnswer::Replay(stored) => stored.status,
                    PaymentAnswer::Fresh(Ok(_)) => 200,
                    PaymentAnswer::Fresh(Err(e)) => e.wire().status.as_u16(),
                };
                match answer {
                    PaymentAnswer::Fresh(Err(
                        Error::LockBusy
                        | Error::GatewayFailed
                        | Error::Unavailable(_)
                        | Error::PaymentSettling,
                    )) => tokio::time::sleep(Duration::from_millis(5)).await,
                    _ => return status,
                }
            }
            0 // gave up; the reconciler settles whatever it left
        });
    }
    let mut answers: HashMap<u16, usize> = HashMap::new();
    while let Some(done) = payers.join_next().await {
        *answers.entry(done.expect("payer")).or_default() += 1;
    }

    // The gateway recovers; the reconciler settles every attempt the payers left unsettled.
    h.gateway.set_config(quick_gateway());
    let later = h.app.clock.now() + chrono::Duration::hours(1);
    for _ in 0..5 {
        let summary = run_reconcile(&h.app, later, &ReconcileOptions::default())
            .await
            .expect("reconciliation");
        if summary.completed + summary.refunded + summary.failed == 0 {
            break;
        }
    }
    for shard in 0..ATTEMPT_SHARDS {
        let left = h
            .app
            .store
            .due_attempts(shard, later, None, 10)
            .await
            .expect("due");
        assert!(left.attempt_ids.is_empty(), "unsettled attempts: {left:?}");
    }

    // Nothing oversold: per item, stock + sold = initial, and sold = completed orders.
    let ledger = h.gateway.ledger();
    let refunded: std::collections::HashSet<&str> =
        ledger.refunds.iter().map(String::as_str).collect();
    let mut kept: HashMap<&str, (i64, usize)> = HashMap::new();
    for charge in &ledger.charges {
        if !refunded.contains(charge.pg_transaction_id.as_str()) {
            let entry = kept.entry(charge.order_id.as_str()).or_default();
            entry.0 += charge.amount;
            entry.1 += 1;
        }
    }
    let mut sold = vec![0i64; items];
    let mut completed_total = 0i64;
    for (_, item, order_id, total) in &orders {
        let status = h.order_status(order_id).await;
        let (net, charges) = kept.get(order_id.as_str()).copied().unwrap_or_default();
        if status == OrderStatus::Completed {
            sold[*item] += 1;
            completed_total += total;
            assert_eq!(
                (net, charges),
                (*total, 1),
                "order {order_id}: one kept charge"
            );
        } else {
            assert_eq!(
                (net, charges),
                (0, 0),
                "order {order_id} ({status:?}) keeps no money"
            );
        }
    }
    for (n, item) in hot.iter().enumerate() {
        let left = h.stock(&item.item_id).await;
        assert!(left >= 0, "oversold {}", item.item_id);
        assert_eq!(left + sold[n], stock, "item {n}: stock + sold = initial");
    }
    let net_total: i64 = kept.values().map(|(net, _)| net).sum();
    assert_eq!(net_total, completed_total, "ledger = completed totals");
    // Under contention for stock most payers must have got an answer they accept as final.
    let paid = answers.get(&200).copied().unwrap_or(0);
    assert!(paid > 0, "answers: {answers:?}");
    eprintln!(
        "{} payments: answers {answers:?}, completed {}, charges {}, refunds {}",
        orders.len(),
        sold.iter().sum::<i64>(),
        ledger.charges.len(),
        ledger.refunds.len()
    );
}

async fn futures_members(h: &Harness, n: usize) -> Vec<cafe::domain::Member> {
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        members.push(h.member().await);
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_payments_over_ten_hot_items_on_memory() {
    let h = harness(
        memory_store(),
        local_lock(lock_config(10_000, 2_000)),
        flaky_gateway(),
    );
    // 10 × 1,000 payers for 10 × 600 units: stock runs out while cards are being charged.
    race(h, 10, 1_000, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_payments_over_ten_hot_items_on_dynamodb_with_the_redis_lock() {
    let h = harness(
        dynamo_store().await,
        redis_lock(lock_config(10_000, 2_000)),
        flaky_gateway(),
    );
    race(h, 10, 10, 6).await;
}
