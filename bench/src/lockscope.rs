//! Scenario 6: lock scope. N payers, all started at once, each pay their own pending one-line
//! order of ONE hot item through `cafe::services::payments::pay`, with the mock gateway at a
//! fixed 200 ms per call, once per `LockScope`:
//!
//! - `Order`: only the order's key is held while charging; payers of the same item charge in
//!   parallel and the conditional stock write (`stock >= qty`) decides who gets the last unit.
//! - `OrderAndItems` (the old behaviour): the item's key too, across the gateway call, so the
//!   hot item serves about one payment per gateway round trip.
//!
//! Each scope runs with stock = N (nobody runs out) and stock = N / 2 (half of them do).
//! Payers answered 409PA001 (lock wait ran out) try again at once, as in `contention.rs`.
//! Afterwards the invariants are checked from the stored state and the gateway's ledger; if any
//! breaks the scenario fails with what broke instead of reporting numbers.

use crate::fixture::{self, BoxError, Services};
use crate::stats::{ms, summarize};
use cafe::App;
use cafe::config::{Argon2Params, GatewayConfig, LockScope};
use cafe::domain::{Member, OrderStatus, PaymentType};
use cafe::error::Error;
use cafe::gateway::MockGateway;
use cafe::services::payments::{self, PaymentPart, PaymentRequest};
use cafe::store::dynamo::DynamoStore;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

/// The mock gateway's latency, every call (charges and refunds alike).
const GATEWAY_LATENCY: Duration = Duration::from_millis(200);
/// A payer whose lock wait ran out tries again at most this often (as in `contention.rs`).
const MAX_ATTEMPTS: usize = 50;
/// The run of one case must end within this.
const CASE_DEADLINE: Duration = Duration::from_secs(300);
/// Members and orders created at once during the (untimed) setup.
const SETUP_PARALLELISM: usize = 16;
/// Payers on the embedded default: the `OrderAndItems` case takes about N × 0.2 s.
const MEMORY_PAYERS: usize = 100;
/// Payers on Redis + moto: moto serves one request at a time and its transactions copy the
/// whole table; at 50 payers under `Order` the queue in front of moto made commits outlive the
/// SDK's 10 s attempt timeout (outcome unknown, left to reconciliation), so fewer.
const MOTO_PAYERS: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Moto,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Memory => "embedded (MemoryStore + LocalLock)",
            Backend::Moto => "Redis + moto (RedisLock + DynamoStore)",
        }
    }
}

fn scope_label(scope: LockScope) -> &'static str {
    match scope {
        LockScope::Order => "`Order`",
        LockScope::OrderAndItems => "`OrderAndItems`",
    }
}

struct Case {
    backend: Backend,
    scope: LockScope,
    payers: usize,
    stock: i64,
}

/// How one payer's requests ended.
enum Outcome {
    Paid,
    OutOfStock,
    GaveUp,
    Other(String),
}

struct PayerRun {
    /// Index into the case's orders.
    order: usize,
    /// From the start signal to the final answer, 409PA001 retries included.
    latency: Duration,
    lock_busy: usize,
    outcome: Outcome,
}

struct PendingOrder {
    member: Member,
    order_id: String,
    total: i64,
}

struct Tally {
    wall: Duration,
    p50: Duration,
    p99: Duration,
    lock_busy: usize,
    completed: usize,
    out_of_stock_before_charge: usize,
    refunded: usize,
    charges: usize,
    final_stock: i64,
}

async fn setup(
    app: &Arc<App>,
    raw: Option<&DynamoStore>,
    case: &Case,
) -> Result<(String, Vec<PendingOrder>), BoxError> {
    let item_id = fixture::item(app, "Hot item", case.stock).await?;
    let permits = Arc::new(Semaphore::new(SETUP_PARALLELISM));
    let mut tasks = JoinSet::new();
    for _ in 0..case.payers {
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
            Ok::<_, BoxError>(PendingOrder {
                member: payer.member,
                order_id,
                total,
            })
        });
    }
    let mut orders = Vec::with_capacity(case.payers);
    while let Some(joined) = tasks.join_next().await {
        orders.push(joined??);
    }
    Ok((item_id, orders))
}

/// Waits for the start signal, then pays until the answer is final (anything but 409PA001).
async fn pay_until_final(
    app: Arc<App>,
    start: Arc<Barrier>,
    index: usize,
    order: Arc<PendingOrder>,
) -> PayerRun {
    let request = PaymentRequest {
        order_id: order.order_id.clone(),
        payments: vec![PaymentPart {
            amount: order.total,
            payment_type: PaymentType::Card,
        }],
    };
    start.wait().await;
    let started = Instant::now();
    let mut lock_busy = 0;
    let mut outcome = Outcome::GaveUp;
    for _ in 0..MAX_ATTEMPTS {
        match payments::pay(&app, &order.member.member_id, &request).await {
            Ok(_) => outcome = Outcome::Paid,
            Err(Error::OutOfStock(_)) => outcome = Outcome::OutOfStock,
            Err(Error::LockBusy) => {
                lock_busy += 1;
                continue;
            }
            Err(error) => outcome = Outcome::Other(format!("{} {error}", error.wire().code)),
        }
        break;
    }
    PayerRun {
        order: index,
        latency: started.elapsed(),
        lock_busy,
        outcome,
    }
}

async fn run_case(
    app: Arc<App>,
    gateway: Arc<MockGateway>,
    raw: Option<&DynamoStore>,
    case: &Case,
) -> Result<Tally, BoxError> {
    let (item_id, orders) = setup(&app, raw, case)
        .await
        .map_err(|e| format!("setup failed: {e}"))?;
    let orders: Vec<Arc<PendingOrder>> = orders.into_iter().map(Arc::new).collect();
    let start = Arc::new(Barrier::new(orders.len() + 1));
    let mut tasks = JoinSet::new();
    for (index, order) in orders.iter().enumerate() {
        tasks.spawn(pay_until_final(
            app.clone(),
            start.clone(),
            index,
            order.clone(),
        ));
    }
    start.wait().await;
    let started = Instant::now();
    let runs = tokio::time::timeout(CASE_DEADLINE, async {
        let mut runs = Vec::with_capacity(orders.len());
        while let Some(done) = tasks.join_next().await {
            runs.push(done);
        }
        runs
    })
    .await
    .map_err(|_| format!("lock scope case did not finish within {CASE_DEADLINE:?}"))?;
    let wall = started.elapsed();

    let mut problems = Vec::new();
    let mut latencies = Vec::with_capacity(runs.len());
    let (mut lock_busy, mut out_of_stock_answers) = (0, 0);
    let mut paid_answers = vec![0usize; orders.len()];
    for run in runs {
        let run = run?;
        latencies.push(run.latency);
        lock_busy += run.lock_busy;
        match run.outcome {
            Outcome::Paid => paid_answers[run.order] += 1,
            Outcome::OutOfStock => out_of_stock_answers += 1,
            Outcome::GaveUp => problems.push(format!(
                "order {} still 409PA001 after {MAX_ATTEMPTS} attempts",
                orders[run.order].order_id
            )),
            Outcome::Other(answer) => problems.push(format!(
                "order {} answered {answer}",
                orders[run.order].order_id
            )),
        }
    }
    let summary = summarize(&mut latencies);

    // The invariants, from the stored state and the gateway's ledger.
    let ledger = gateway.ledger();
    let mut charges_per_order: HashMap<&str, usize> = HashMap::new();
    for charge in &ledger.charges {
        *charges_per_order
            .entry(charge.order_id.as_str())
            .or_default() += 1;
    }
    let net = ledger.net_charges();
    let mut net_per_order: HashMap<&str, usize> = HashMap::new();
    for charge in &net {
        *net_per_order.entry(charge.order_id.as_str()).or_default() += 1;
    }
    let (mut completed, mut completed_total) = (0usize, 0i64);
    let mut refunded_orders = 0;
    for (index, pending) in orders.iter().enumerate() {
        let id = pending.order_id.as_str();
        let stored = app
            .store
            .get_order(id)
            .await
            .map_err(|e| format!("reading order {id} back failed: {e}"))?
            .ok_or_else(|| format!("order {id} vanished"))?;
        let is_completed = stored.status == OrderStatus::Completed;
        let net_charges = net_per_order.get(id).copied().unwrap_or(0);
        if is_completed {
            completed += 1;
            completed_total += stored.total_price;
            if stored.payments.len() != 1 {
                problems.push(format!(
                    "order {id} completed with {} payments",
                    stored.payments.len()
                ));
            }
        }
        if net_charges > 1 {
            problems.push(format!("order {id} charged {net_charges} times (net)"));
        }
        let expected_net = if is_completed { stored.total_price } else { 0 };
        if ledger.net_for_order(id) != expected_net {
            problems.push(format!(
                "order {id} ({:?}): net charged {}, expected {expected_net}",
                stored.status,
                ledger.net_for_order(id)
            ));
        }
        if paid_answers[index] > 1 || (paid_answers[index] == 1) != is_completed {
            problems.push(format!(
                "order {id} ({:?}) answered 200 {} times",
                stored.status, paid_answers[index]
            ));
        }
        if charges_per_order.get(id).copied().unwrap_or(0) > net_charges {
            refunded_orders += 1;
        }
    }
    let final_stock = app
        .store
        .get_item(&item_id)
        .await
        .map_err(|e| format!("reading the item back failed: {e}"))?
        .ok_or("hot item vanished")?
        .stock;
    if final_stock < 0 || final_stock + completed as i64 != case.stock {
        problems.push(format!(
            "oversold: stock {final_stock} + {completed} sold != {} initial",
            case.stock
        ));
    }
    let expected_sold = case.stock.min(case.payers as i64);
    if completed as i64 != expected_sold {
        problems.push(format!("{completed} sold, expected {expected_sold}"));
    }
    let net_total: i64 = net.iter().map(|c| c.amount).sum();
    if net_total != completed_total {
        problems.push(format!(
            "ledger net {net_total} != completed orders' totals {completed_total}"
        ));
    }
    let refunds = ledger.refunds.len();
    if ledger.charges.len() != refunds + completed {
        problems.push(format!(
            "{} charges − {refunds} refunds != {completed} completed",
            ledger.charges.len()
        ));
    }
    if refunded_orders > out_of_stock_answers || refunded_orders != refunds {
        problems.push(format!(
            "{refunds} refunds over {refunded_orders} orders, {out_of_stock_answers} answered 400OR000"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "lock scope {} on {}, {} payers, stock {}: INVARIANT BROKEN: {}",
            scope_label(case.scope),
            case.backend.label(),
            case.payers,
            case.stock,
            problems.join("; ")
        )
        .into());
    }
    Ok(Tally {
        wall,
        p50: summary.median,
        p99: summary.p99,
        lock_busy,
        completed,
        out_of_stock_before_charge: out_of_stock_answers - refunded_orders,
        refunded: refunds,
        charges: ledger.charges.len(),
        final_stock,
    })
}

/// cores, architecture and CPU model, as in the document's header.
fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cores} cores, {} ({cpu})", std::env::consts::ARCH)
}

pub async fn run(
    services: Option<&Services>,
    quick: bool,
    report: &mut String,
) -> Result<(), BoxError> {
    let scale = |n: usize| if quick { (n / 10).max(2) } else { n };
    let mut backends = vec![(Backend::Memory, scale(MEMORY_PAYERS))];
    if services.is_some() {
        backends.push((Backend::Moto, scale(MOTO_PAYERS)));
    }
    let gateway = GatewayConfig {
        min_latency: GATEWAY_LATENCY,
        max_latency: GATEWAY_LATENCY,
        failure_rate: 0.0,
        drop_rate: 0.0,
    };
    let base = fixture::config(Argon2Params::cheapest_for_tests(), gateway);
    let began = Instant::now();
    let mut rows = String::new();
    for &(backend, n) in &backends {
        // One payer alone first: the uncontended service time, which bounds what a lock held
        // across the whole payment can serve (1 ÷ it).
        let mut cases = vec![(LockScope::Order, 1, 1)];
        for stock in [n as i64, (n as i64 / 2).max(1)] {
            for scope in [LockScope::OrderAndItems, LockScope::Order] {
                cases.push((scope, n, stock));
            }
        }
        for (scope, payers, stock) in cases {
            let case = Case {
                backend,
                scope,
                payers,
                stock,
            };
            eprintln!(
                "lockscope: {} {} {payers} payers, stock {stock}",
                backend.label(),
                scope_label(scope)
            );
            let mut config = base.clone();
            config.lock_scope = scope;
            let (app, gateway, raw) = match (backend, services) {
                (Backend::Moto, Some(services)) => {
                    // `aws_app` gives the clients patience for moto's stalls and keeps the
                    // configured dependency timeout for the payment's charge budget.
                    let (app, gateway, store) = fixture::aws_app(services, config.clone()).await?;
                    (app, gateway, Some(store))
                }
                _ => {
                    let (app, gateway) = fixture::memory_app(config).await?;
                    (app, gateway, None)
                }
            };
            let case_began = Instant::now();
            let t = run_case(Arc::new(app), gateway, raw.as_ref(), &case).await?;
            eprintln!(
                "lockscope: done in {:.1} s (setup included), {:.2} s timed",
                case_began.elapsed().as_secs_f64(),
                t.wall.as_secs_f64()
            );
            let _ = writeln!(
                rows,
                "| {} | {} | {payers} ({stock}) | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} / {} | {} | ok |",
                backend.label(),
                if payers == 1 {
                    "either (alone)"
                } else {
                    scope_label(scope)
                },
                t.wall.as_secs_f64(),
                t.completed as f64 / t.wall.as_secs_f64().max(1e-9),
                ms(t.p50),
                ms(t.p99),
                t.lock_busy,
                t.completed,
                t.out_of_stock_before_charge,
                t.refunded,
                t.charges,
                t.final_stock,
            );
        }
    }
    let _ = writeln!(
        report,
        "## Lock scope: one hot item, 200 ms gateway\n\n\
         Machine: {}. `bench lockscope`; whole scenario {:.0} s including setup. N payers, all \
         released at once by a barrier, each pay their own pending order of 1 × the same hot \
         item through `cafe::services::payments::pay`, with the mock gateway at a fixed {} ms \
         per call (charges and refunds; no failures), once per `LockScope` and with stock = N \
         (nobody runs out) and stock = N / 2. A payer answered 409PA001 (lock wait of {} s ran \
         out) tries again at once, at most {MAX_ATTEMPTS} times. N = {} on the embedded \
         default{}; the first row of each backend is one payer alone (its uncontended payment \
         time bounds a lock held across the payment to 1 ÷ that). payments/s = completed ÷ wall (first request to last answer); latency is \
         per payer, start → final answer (409PA001 retries included). \"charged, refunded\" \
         is from the gateway ledger (charges − completed, asserted equal to the refunds): \
         cards charged and then refunded because the conditional stock write refused the \
         commit. Asserted on every row (the bench fails instead of reporting otherwise): \
         stock + sold = initial, stock ≥ 0, sold = min(stock, N); ledger net = the completed \
         orders' totals, per order and in sum; no order with more than one net charge, one \
         stored payment or one 200; every payer ends with 200 or 400OR000.\n",
        machine(),
        began.elapsed().as_secs_f64(),
        GATEWAY_LATENCY.as_millis(),
        base.lock.max_wait.as_secs_f64(),
        scale(MEMORY_PAYERS),
        if services.is_some() {
            format!(", N = {} on Redis + moto", scale(MOTO_PAYERS))
        } else {
            " (Redis + moto skipped: no services)".to_owned()
        },
    );
    let _ = writeln!(
        report,
        "| backend | lock scope | payers (stock) | wall (s) | payments/s | p50 (ms) | p99 (ms) | 409PA001 retries | completed | 400OR000 before charge | charged, refunded / charges | stock left | invariants |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    report.push_str(&rows);
    let _ = writeln!(report);
    Ok(())
}
