//! Scenario 4: contention. Many members pay, all at once, for orders of a few hot items with
//! less stock than orders; payers whose lock wait ran out (409PA001) try again, up to a bound.
//! Afterwards: nothing oversold (stock never below 0, exactly `stock` sold per item, one
//! completed order and one kept charge per sale).

use crate::caller::Caller;
use crate::fixture::{self, BoxError, Services};
use crate::stats::{ms, summarize};
use cafe::App;
use cafe::config::{Argon2Params, GatewayConfig};
use cafe::domain::OrderStatus;
use cafe::gateway::MockGateway;
use cafe::store::dynamo::DynamoStore;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A payer whose lock wait ran out tries again at most this often.
const MAX_ATTEMPTS: usize = 50;
/// The whole run of one case must end within this.
const CASE_DEADLINE: Duration = Duration::from_secs(600);
/// Members and orders created at once during the (untimed) setup.
const SETUP_PARALLELISM: usize = 16;

struct Case {
    backend: &'static str,
    items: usize,
    payers_per_item: usize,
    stock: i64,
}

/// What one payment request ended as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Paid,
    OutOfStock,
    LockBusy,
    Other,
}

struct Order {
    item: usize,
    order_id: String,
    total: i64,
    access: String,
}

struct CaseTally {
    requests: usize,
    paid: usize,
    out_of_stock: usize,
    lock_busy: usize,
    other: usize,
    gave_up: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
    check: String,
}

async fn setup(
    app: &Arc<App>,
    raw: Option<&DynamoStore>,
    case: &Case,
) -> Result<(Vec<String>, Vec<Order>), BoxError> {
    let mut items = Vec::with_capacity(case.items);
    for i in 0..case.items {
        items.push(fixture::item(app, &format!("Hot item {i}"), case.stock).await?);
    }
    let permits = Arc::new(Semaphore::new(SETUP_PARALLELISM));
    let mut tasks = JoinSet::new();
    for (item, item_id) in items.iter().enumerate() {
        for _ in 0..case.payers_per_item {
            let (app, permits, item_id) = (app.clone(), permits.clone(), item_id.clone());
            let raw = raw.cloned();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let payer = match raw {
                    Some(store) => fixture::raw_payer(&app, &store).await?,
                    None => fixture::payer(&app, "not-a-password-hash").await?,
                };
                // moto fails a transaction now and then when several run at once (HTTP 500).
                let mut placed = fixture::order(&app, &payer, &item_id, 1).await;
                for _ in 0..5 {
                    if placed.is_ok() {
                        break;
                    }
                    placed = fixture::order(&app, &payer, &item_id, 1).await;
                }
                let (order_id, total) = placed?;
                Ok::<_, BoxError>(Order {
                    item,
                    order_id,
                    total,
                    access: payer.access,
                })
            });
        }
    }
    let mut orders = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        orders.push(joined??);
    }
    Ok((items, orders))
}

async fn pay(caller: Arc<Caller>, order: Order) -> Result<Vec<(Duration, Outcome)>, BoxError> {
    let body = json!({ "orderId": order.order_id, "payments": [{ "amount": order.total, "type": "CARD" }] });
    let mut attempts = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let answer = caller
            .call("POST", "/payment", Some(&body), Some(&order.access))
            .await?;
        let outcome = match (answer.status, answer.code()) {
            (200, _) => Outcome::Paid,
            (_, "400OR000") => Outcome::OutOfStock,
            (_, "409PA001") => Outcome::LockBusy,
            _ => {
                eprintln!(
                    "unexpected payment answer {} {}",
                    answer.status, answer.body
                );
                Outcome::Other
            }
        };
        attempts.push((answer.elapsed, outcome));
        if outcome != Outcome::LockBusy {
            break;
        }
    }
    Ok(attempts)
}

async fn run_case(
    app: Arc<App>,
    gateway: Arc<MockGateway>,
    raw: Option<&DynamoStore>,
    case: &Case,
) -> Result<CaseTally, BoxError> {
    let (items, orders) = setup(&app, raw, case).await?;
    let order_ids: Vec<(usize, String)> = orders
        .iter()
        .map(|o| (o.item, o.order_id.clone()))
        .collect();
    let caller = Arc::new(Caller::Dispatch(app.clone()));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for order in orders {
        tasks.spawn(pay(caller.clone(), order));
    }
    let mut samples = Vec::new();
    let (mut paid, mut out_of_stock, mut lock_busy, mut other, mut gave_up) = (0, 0, 0, 0, 0);
    let joined = tokio::time::timeout(CASE_DEADLINE, async {
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.push(done);
        }
        all
    })
    .await
    .map_err(|_| "contention case did not finish in time")?;
    let wall = started.elapsed();
    for done in joined {
        let attempts = done??;
        if attempts
            .last()
            .is_some_and(|(_, o)| *o == Outcome::LockBusy)
        {
            gave_up += 1;
        }
        for (elapsed, outcome) in attempts {
            samples.push(elapsed);
            match outcome {
                Outcome::Paid => paid += 1,
                Outcome::OutOfStock => out_of_stock += 1,
                Outcome::LockBusy => lock_busy += 1,
                Outcome::Other => other += 1,
            }
        }
    }
    let requests = samples.len();
    let summary = summarize(&mut samples);

    // The invariants, from stored state and the gateway's ledger.
    let mut problems = Vec::new();
    let mut completed = vec![0i64; items.len()];
    for (item, order_id) in &order_ids {
        let order = app.store.get_order(order_id).await?;
        if order.is_some_and(|o| o.status == OrderStatus::Completed) {
            completed[*item] += 1;
        }
    }
    for (i, item_id) in items.iter().enumerate() {
        let stock = app.store.get_item(item_id).await?.map_or(-1, |i| i.stock);
        let expected_sold = case.stock.min(case.payers_per_item as i64);
        if stock < 0 || completed[i] + stock != case.stock || completed[i] != expected_sold {
            problems.push(format!(
                "item {i}: stock {stock}, {} completed orders",
                completed[i]
            ));
        }
    }
    let kept = gateway.ledger().net_charges().len();
    if kept != paid || completed.iter().sum::<i64>() != paid as i64 {
        problems.push(format!("{paid} paid answers, {kept} kept charges"));
    }
    let check = if problems.is_empty() {
        format!(
            "ok: every item at 0, {} sold each, {kept} kept charges",
            case.stock.min(case.payers_per_item as i64)
        )
    } else {
        format!("**FAILED**: {}", problems.join("; "))
    };
    Ok(CaseTally {
        requests,
        paid,
        out_of_stock,
        lock_busy,
        other,
        gave_up,
        wall,
        p50: summary.median,
        p99: summary.p99,
        check,
    })
}

pub async fn run(
    services: Option<&Services>,
    quick: bool,
    report: &mut String,
) -> Result<(), BoxError> {
    let scale = |n: usize| if quick { (n / 10).max(2) } else { n };
    let mut cases = vec![
        Case {
            backend: "embedded",
            items: 1,
            payers_per_item: scale(200),
            stock: (scale(200) as i64 / 2).max(1),
        },
        Case {
            backend: "embedded",
            items: 10,
            payers_per_item: scale(1_000),
            stock: (scale(1_000) as i64 / 10).max(1),
        },
    ];
    if services.is_some() {
        cases.push(Case {
            backend: "Redis + moto",
            items: 1,
            payers_per_item: scale(50),
            stock: (scale(50) as i64 / 2).max(1),
        });
        cases.push(Case {
            backend: "Redis + moto",
            items: 10,
            payers_per_item: scale(20),
            stock: (scale(20) as i64 / 4).max(1),
        });
    }
    let config = fixture::config(Argon2Params::cheapest_for_tests(), GatewayConfig::default());
    let _ = writeln!(
        report,
        "## 4. Contention\n\nAll payers start at once (one task each, in process through \
         `cafe_local::dispatch`), each paying its own one-line order; every item has less stock \
         than orders. The mock gateway keeps the project's default latency ({}–{} ms per \
         charge), so the lock is held about as long as a real charge. A payer answered 409PA001 \
         (its lock wait of {} s ran out) tries again, at most {MAX_ATTEMPTS} times. Latency and \
         throughput count every request (retries included). On Redis + moto both cases are \
         scaled down (1 × 50 payers for 25 stock, 10 × 20 payers for 5 stock each): moto serves \
         every request from one Python process, and its TransactWriteItems deep-copies the whole \
         table once per item in the transaction (moto's rollback), so each payment's completion \
         costs time proportional to the table's size; the full sizes would take hours there. \
         On moto, payers' profiles are written with a raw PutItem (their orders go through the \
         store).\n",
        config.gateway.min_latency.as_millis(),
        config.gateway.max_latency.as_millis(),
        config.lock.max_wait.as_secs_f64(),
    );
    let _ = writeln!(
        report,
        "| backend | items × payers (stock each) | requests | wall (s) | req/s | p50 (ms) | p99 (ms) | paid | 400OR000 | 409PA001 | gave up | other | oversell check |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for case in &cases {
        eprintln!(
            "contention: {} {} × {}",
            case.backend, case.items, case.payers_per_item
        );
        let (app, gateway, raw) = match (case.backend, services) {
            ("Redis + moto", Some(services)) => {
                let (app, gateway, store) = fixture::aws_app(services, config.clone()).await?;
                (app, gateway, Some(store))
            }
            _ => {
                let (app, gateway) = fixture::memory_app(config.clone()).await?;
                (app, gateway, None)
            }
        };
        let r = run_case(Arc::new(app), gateway, raw.as_ref(), case).await?;
        let _ = writeln!(
            report,
            "| {} | {} × {} ({}) | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            case.backend,
            case.items,
            case.payers_per_item,
            case.stock,
            r.requests,
            r.wall.as_secs_f64(),
            r.requests as f64 / r.wall.as_secs_f64().max(1e-9),
            ms(r.p50),
            ms(r.p99),
            r.paid,
            r.out_of_stock,
            r.lock_busy,
            r.gave_up,
            r.other,
            r.check
        );
    }
    let _ = writeln!(report);
    Ok(())
}
