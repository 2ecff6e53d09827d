//! Crash at every step: payments and paid-order cancellations run in a real `cafe-local`
//! process (the AWS backend: moto and Redis from `scripts/test.sh`, the `cafe-pg` gateway server
//! whose ledger is a file), which is `kill -9`ed at each step in turn — after the lock, after
//! each charge, after the commit before the answer, after the cancellation's write, during its
//! refunds. Then the reconciler runs, and the client retries with its `Idempotency-Key`.
//!
//! After all runs, for every order: the net charged at the gateway's ledger equals its total if it
//! is `COMPLETED` and 0 otherwise; no part is charged twice; stock + sold = initial; every
//! attempt is settled.
//!
//! A process is stopped at a step with the `fault-injection` hook (`CAFE_PAUSE_AT`, see
//! `cafe::fault::pause_point`): it prints that it reached the step and stops there; the test
//! then kills it with SIGKILL. (Memory-backed runs are not part of this: their state dies with
//! the process.)

use cafe::App;
use cafe::clock::{Clock, ManualClock};
use cafe::domain::{Item, OrderStatus};
use cafe::gateway::HttpGateway;
use cafe::lock::RedisLock;
use cafe::services::reconcile::{ReconcileOptions, run_reconcile};
use cafe::store::dynamo::{DynamoStore, table};
use cafe::store::{ATTEMPT_SHARDS, ItemStore, OrderStore, PaymentAttemptStore};
use cafe::testing::pg::{Pg, SECRET, temp_dir};
use cafe_local::testing::{SignedUp, call, request, sign_up};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const STOCK: i64 = 50;

/// What the test process sees: the same table, lock and gateway as the child, on a clock it
/// can move past the attempts' deadlines.
struct World {
    app: App,
    clock: Arc<ManualClock>,
    store: Arc<DynamoStore>,
    table: String,
    pg: Pg,
    latte: Item,
    tea: Item,
}

async fn world() -> World {
    let endpoint = cafe::testing::dynamodb_endpoint();
    let aws = cafe::aws::Aws::load(Some(&endpoint), Duration::from_secs(60)).await;
    let table = format!(
        "cafe-crash-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    table::create_table_with(&aws.dynamodb(), &table, false)
        .await
        .expect("table");
    let store = Arc::new(DynamoStore::new(aws.dynamodb(), table.clone(), 400));
    let dir = temp_dir("crash");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &[]);
    let mut config = cafe::testing::test_config();
    // The child signs and verifies with the same keyset (test_config's development one).
    config.payment_gateway_url = Some(pg.base.clone());
    config.payment_gateway_secret = Some(SECRET.into());
    config.lock.max_wait = Duration::from_secs(5);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let lock = Arc::new(
        RedisLock::new(
            &cafe::testing::redis_url(),
            config.lock,
            Duration::from_secs(5),
        )
        .expect("redis lock"),
    );
    let app = App::with_store(config, clock.clone(), store.clone(), lock).expect("app");
    let item = |name: &str, price: i64| Item {
        item_id: cafe::ids::new_id(chrono::Utc::now()),
        name: name.into(),
        price,
        stock: STOCK,
        active: true,
        version: 0,
    };
    let (latte, tea) = (item("Latte", 4_500), item("Tea", 3_000));
    for item in [&latte, &tea] {
        store.put_item(item).await.expect("item");
    }
    World {
        app,
        clock,
        store,
        table,
        pg,
        latte,
        tea,
    }
}

/// A `cafe-local` process on the world's table, lock and gateway, stopping at `pause_at`.
struct Server {
    child: Child,
    base: String,
    paused: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(w: &World, pause_at: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cafe-local"))
            .env("PORT", "0")
            .env("CAFE_BACKEND", "aws")
            .env("CAFE_ENV", "development")
            .env("TABLE_NAME", &w.table)
            .env("DYNAMODB_ENDPOINT", cafe::testing::dynamodb_endpoint())
            .env("REDIS_URL", cafe::testing::redis_url())
            .env(
                "TOKEN_SIGNING_KEYS",
                cafe::auth::SigningKeyset::development().to_json(),
            )
            .env("PAYMENT_GATEWAY_URL", &w.pg.base)
            .env("PAYMENT_GATEWAY_SECRET_KEY", SECRET)
            .env("ARGON2_MEMORY_KIB", "8")
            .env("ARGON2_ITERATIONS", "1")
            // A killed holder's lock keys go away soon.
            .env("LOCK_TTL_MS", "1500")
            .env("CAFE_PAUSE_AT", pause_at)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cafe-local starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("cafe-local prints its address");
        let base = line
            .trim()
            .strip_prefix("cafe-local serving on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, paused) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(point) = line.strip_prefix("CAFE_PAUSED_AT ") {
                    let _ = tx.send(point.to_owned());
                }
            }
        });
        Server {
            child,
            base,
            paused,
        }
    }

    /// Sends `method path body` and, once the process says it reached its step, kills it with
    /// SIGKILL; the request never gets an answer.
    async fn kill_at_step(
        mut self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> String {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let pending = tokio::spawn(req.send());
        let point = tokio::task::spawn_blocking(move || {
            let point = self.paused.recv_timeout(Duration::from_secs(60));
            let _ = self.child.kill(); // SIGKILL
            let _ = self.child.wait();
            point
        })
        .await
        .expect("watcher")
        .expect("the process reached its step");
        let answer = pending.await.expect("request task");
        assert!(answer.is_err(), "a killed process answered: {answer:?}");
        point
    }
}

fn split(order_id: &str, total: i64) -> Value {
    json!({"orderId": order_id, "payments": [
        {"amount": total - 1_000, "type": "CARD"}, {"amount": 1_000, "type": "POINT"}]})
}

async fn order(w: &World, member: &SignedUp) -> (String, i64) {
    let (status, body) = call(
        &w.app,
        request("POST", "/order")
            .bearer(&member.access)
            .json(&json!({"items": [
                {"itemId": w.latte.item_id, "quantity": 2},
                {"itemId": w.tea.item_id, "quantity": 1}]}))
            .build(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let order = &body["result"];
    (
        order["orderId"].as_str().expect("id").to_owned(),
        order["totalPrice"].as_i64().expect("total"),
    )
}

/// Pays in-process, retrying what a client retries, under `key`.
async fn pay_until_final(
    w: &World,
    member: &SignedUp,
    order_id: &str,
    total: i64,
    key: &str,
) -> (u16, Value) {
    for _ in 0..20 {
        let (status, body) = call(
            &w.app,
            request("POST", "/payment")
                .bearer(&member.access)
                .header("idempotency-key", key)
                .json(&split(order_id, total))
                .build(),
        )
        .await;
        match status {
            409 | 502 | 503 => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => return (status, body),
        }
    }
    panic!("the payment of {order_id} never got a final answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_crash_at_any_step_loses_or_doubles_money() {
    let w = world().await;
    let member = sign_up(&w.app).await;
    let mut payments: Vec<(String, i64, String)> = Vec::new();
    let mut cancelled: Vec<String> = Vec::new();

    // Payments killed at every step.
    for point in [
        "payment:locked",
        "payment:charged:0",
        "payment:charged:1",
        "payment:committed",
    ] {
        let (order_id, total) = order(&w, &member).await;
        let key = format!("crash-{point}");
        let server = Server::start(&w, point);
        let reached = server
            .kill_at_step(
                reqwest::Method::POST,
                "/payment",
                &member.access,
                Some(split(&order_id, total)),
                Some(&key),
            )
            .await;
        assert_eq!(reached, point);
        payments.push((order_id, total, key));
    }
    // Paid orders whose cancellation is killed after its write, and during its refunds.
    for point in ["cancel:committed", "refund:refunded:0"] {
        let (order_id, total) = order(&w, &member).await;
        let (status, body) =
            pay_until_final(&w, &member, &order_id, total, &format!("paid-{point}")).await;
        assert_eq!(status, 200, "{body}");
        let server = Server::start(&w, point);
        let reached = server
            .kill_at_step(
                reqwest::Method::DELETE,
                &format!("/order/{order_id}/cancel"),
                &member.access,
                None,
                None,
            )
            .await;
        assert_eq!(reached, point);
        cancelled.push(order_id);
    }

    // Past every deadline, the reconciler settles what the dead processes left.
    w.clock.advance(chrono::Duration::minutes(10));
    let summary = run_reconcile(&w.app, w.clock.now(), &ReconcileOptions::default())
        .await
        .expect("reconciliation");
    assert_eq!(summary.failed, 0, "{summary:?}");
    // charged:1 is completed; charged:0 refunded; the two cancellations refunded.
    assert_eq!((summary.completed, summary.refunded), (1, 3), "{summary:?}");

    // The client retries each payment with its key: the settled answer, or a fresh run.
    for (order_id, total, key) in &payments {
        let (status, body) = pay_until_final(&w, &member, order_id, *total, key).await;
        assert_eq!(status, 200, "{order_id} ({key}): {body}");
    }

    // Every attempt settled.
    let far = w.clock.now() + chrono::Duration::days(1);
    for shard in 0..ATTEMPT_SHARDS {
        let left = w
            .store
            .due_attempts(shard, far, None, 50)
            .await
            .expect("due");
        assert!(left.attempt_ids.is_empty(), "unsettled: {left:?}");
    }
    let gateway = HttpGateway::new(&w.pg.base, SECRET, Duration::from_secs(5)).expect("gateway");
    let ledger = gateway.ledger().await.expect("ledger");
    // No part charged twice: one charge per idempotency key.
    let keys: HashSet<&str> = ledger
        .charges
        .iter()
        .map(|c| c.idempotency_key.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        ledger.charges.len(),
        "a key charged twice: {ledger:?}"
    );
    let refunded: HashSet<&str> = ledger.refunds.iter().map(String::as_str).collect();
    let mut net: HashMap<&str, i64> = HashMap::new();
    for charge in &ledger.charges {
        if !refunded.contains(charge.pg_transaction_id.as_str()) {
            *net.entry(charge.order_id.as_str()).or_default() += charge.amount;
        }
    }
    let mut sold = 0;
    for (order_id, total) in payments
        .iter()
        .map(|(o, t, _)| (o.clone(), *t))
        .chain(cancelled.iter().map(|o| (o.clone(), 0)))
    {
        let stored = w
            .store
            .get_order(&order_id)
            .await
            .expect("read")
            .expect("order");
        let kept = net.get(order_id.as_str()).copied().unwrap_or(0);
        match stored.status {
            OrderStatus::Completed => {
                sold += 1;
                assert_eq!(kept, total, "{order_id}: completed keeps its total");
            }
            _ => assert_eq!(kept, 0, "{order_id} ({:?}) keeps nothing", stored.status),
        }
        if cancelled.contains(&order_id) {
            assert_eq!(stored.status, OrderStatus::Cancelled);
        }
    }
    assert_eq!(sold, payments.len(), "every payment completed once");
    for (item, per_order) in [(&w.latte, 2), (&w.tea, 1)] {
        let left = w
            .store
            .get_item(&item.item_id)
            .await
            .expect("read")
            .expect("item")
            .stock;
        assert_eq!(
            left + per_order * sold as i64,
            STOCK,
            "{}: stock + sold = initial",
            item.name
        );
    }
}
