//! The per-endpoint plan shared by scenario 2 (in process) and scenario 3 (over HTTP): every
//! endpoint called `iterations` times, each call on a success path, with the state it needs
//! prepared untimed beforehand.

use crate::caller::{Answer, Caller};
use crate::fixture::{self, BoxError};
use crate::stats::{Summary, summarize};
use cafe::App;
use cafe_local::testing::{PASSWORD, sign_up_body, unique_email};
use serde_json::json;
use std::time::Duration;

/// One dependency request, by kind (each kind's raw round trip is measured in scenario 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetItem,
    Query,
    BatchGetItem,
    PutItem,
    TransactWriteItems,
    /// One Redis command (SET NX PX, EVALSHA): timed as a PING.
    Redis,
}

use Op::{BatchGetItem, GetItem, PutItem, Query, Redis, TransactWriteItems as Tx};

/// The dependency requests of an endpoint's success path on the AWS backend, counted from the
/// code (handler → use case → `DynamoStore` / `RedisLock`).
pub fn requests(function: &str) -> &'static [Op] {
    match function {
        // create_member + store_refresh_token.
        "member-signup" => &[Tx, PutItem],
        // email guard + profile + store_refresh_token.
        "auth-login" => &[GetItem, GetItem, PutItem],
        // token read + rotation + member read.
        "auth-refresh" => &[GetItem, Tx, GetItem],
        // authenticate + history.
        "member-get" => &[GetItem, Query],
        // authenticate + profile read + the conditional transition.
        "member-withdraw" | "member-restore" => &[GetItem, GetItem, Tx],
        // catalog + batch read.
        "items-list" => &[Query, BatchGetItem],
        "items-get" => &[GetItem],
        // authenticate + items + order, history and outbox rows.
        "order-create" => &[GetItem, BatchGetItem, Tx],
        // authenticate + order with payments + history.
        "order-get" => &[GetItem, Query, Query],
        // authenticate + GSI page (pending orders: no payment reads).
        "order-list" => &[GetItem, Query],
        // a pending order: authenticate + order + conditional cancel (no lock).
        "order-cancel" => &[GetItem, Query, Tx],
        // authenticate + order + re-read under the lock + stock + the completion; SET NX on the
        // order key and on the item key, one after the other, and the release script.
        "payment-create" => &[GetItem, Query, Query, BatchGetItem, Tx, Redis, Redis, Redis],
        _ => &[],
    }
}

/// (DynamoDB requests, Redis commands).
pub fn round_trips(function: &str) -> (usize, usize) {
    let ops = requests(function);
    let redis = ops.iter().filter(|op| **op == Redis).count();
    (ops.len() - redis, redis)
}

pub struct EndpointTiming {
    pub function: &'static str,
    pub note: &'static str,
    pub summary: Summary,
    /// Calls that did not answer the expected success status.
    pub failures: usize,
}

struct Recorder {
    function: &'static str,
    note: &'static str,
    samples: Vec<Duration>,
    failures: usize,
}

impl Recorder {
    fn new(function: &'static str, note: &'static str, capacity: usize) -> Self {
        Self {
            function,
            note,
            samples: Vec::with_capacity(capacity),
            failures: 0,
        }
    }

    fn record(&mut self, answer: &Answer, expected: u16) {
        self.samples.push(answer.elapsed);
        if answer.status != expected {
            if self.failures == 0 {
                eprintln!(
                    "{}: expected {expected}, got {} {}",
                    self.function, answer.status, answer.body
                );
            }
            self.failures += 1;
        }
    }

    fn finish(mut self) -> EndpointTiming {
        EndpointTiming {
            function: self.function,
            note: self.note,
            summary: summarize(&mut self.samples),
            failures: self.failures,
        }
    }
}

/// Sign-up and log-in only (the two endpoints dominated by password hashing).
pub async fn run_hashing(
    caller: &Caller,
    iterations: usize,
    note: &'static str,
) -> Result<Vec<EndpointTiming>, BoxError> {
    let mut signup = Recorder::new("member-signup", note, iterations);
    for _ in 0..iterations {
        let body = sign_up_body(&unique_email());
        signup.record(
            &caller.call("POST", "/member", Some(&body), None).await?,
            201,
        );
    }
    let email = unique_email();
    let body = sign_up_body(&email);
    caller.call("POST", "/member", Some(&body), None).await?;
    let login_body = json!({ "email": email, "password": PASSWORD });
    let mut login = Recorder::new("auth-login", note, iterations);
    for _ in 0..iterations {
        login.record(
            &caller
                .call("POST", "/auth/login", Some(&login_body), None)
                .await?,
            200,
        );
    }
    Ok(vec![signup.finish(), login.finish()])
}

/// Every endpoint but sign-up and log-in, `iterations` calls each.
pub async fn run_plan(
    caller: &Caller,
    app: &App,
    iterations: usize,
) -> Result<Vec<EndpointTiming>, BoxError> {
    let n = iterations;
    let mut out = Vec::new();
    let seed_item = cafe::domain::item::seed_items()
        .first()
        .map(|i| i.item_id.clone())
        .unwrap_or_default();

    let mut list = Recorder::new("items-list", "", n);
    let mut get = Recorder::new("items-get", "", n);
    let item_path = format!("/items/{seed_item}");
    for _ in 0..n {
        list.record(&caller.call("GET", "/items", None, None).await?, 200);
        get.record(&caller.call("GET", &item_path, None, None).await?, 200);
    }
    out.push(list.finish());
    out.push(get.finish());

    // A real sign-up gives a real refresh token to rotate, and a member with one history row.
    let body = sign_up_body(&unique_email());
    let signed = caller.call("POST", "/member", Some(&body), None).await?;
    let member_id = signed.result_str("memberId")?;
    let access = signed.result_str("accessToken")?;
    let mut refresh_token = signed.result_str("refreshToken")?;
    let mut refresh = Recorder::new("auth-refresh", "", n);
    for _ in 0..n {
        let body = json!({ "refreshToken": refresh_token });
        let answer = caller
            .call("POST", "/auth/refresh", Some(&body), None)
            .await?;
        refresh.record(&answer, 200);
        refresh_token = answer.result_str("refreshToken")?;
    }
    out.push(refresh.finish());

    let mut profile = Recorder::new("member-get", "", n);
    let path = format!("/member/{member_id}");
    for _ in 0..n {
        profile.record(&caller.call("GET", &path, None, Some(&access)).await?, 200);
    }
    out.push(profile.finish());

    let hash = app.passwords.hash(PASSWORD)?;
    let mover = fixture::payer(app, &hash).await?;
    let mut withdraw = Recorder::new("member-withdraw", "", n);
    let mut restore = Recorder::new("member-restore", "", n);
    let withdraw_path = format!("/member/{}/withdraw", mover.member.member_id);
    let restore_path = format!("/member/{}/restore", mover.member.member_id);
    for _ in 0..n {
        let token = Some(mover.access.as_str());
        withdraw.record(
            &caller.call("DELETE", &withdraw_path, None, token).await?,
            200,
        );
        restore.record(&caller.call("POST", &restore_path, None, token).await?, 200);
    }
    out.push(withdraw.finish());
    out.push(restore.finish());

    let item_id = fixture::item(app, "Bench coffee", 1_000_000_000).await?;
    let buyer = fixture::payer(app, &hash).await?;
    let token = Some(buyer.access.as_str());
    let mut create = Recorder::new("order-create", "", n);
    let order_body = json!({ "items": [{ "itemId": item_id, "quantity": 1 }] });
    for _ in 0..n {
        create.record(
            &caller
                .call("POST", "/order", Some(&order_body), token)
                .await?,
            201,
        );
    }
    out.push(create.finish());

    // A member with three pending orders: reading and listing them.
    let reader = fixture::payer(app, &hash).await?;
    let mut read_order = String::new();
    for _ in 0..3 {
        read_order = fixture::order(app, &reader, &item_id, 1).await?.0;
    }
    let token = Some(reader.access.as_str());
    let mut order_get = Recorder::new("order-get", "", n);
    let mut order_list = Recorder::new("order-list", "3 pending orders", n);
    let path = format!("/order/{read_order}");
    for _ in 0..n {
        order_get.record(&caller.call("GET", &path, None, token).await?, 200);
        order_list.record(&caller.call("GET", "/orders", None, token).await?, 200);
    }
    out.push(order_get.finish());
    out.push(order_list.finish());

    // Pending orders to cancel and to pay, one per call.
    let mut to_cancel = Vec::with_capacity(n);
    let mut to_pay = Vec::with_capacity(n);
    for _ in 0..n {
        to_cancel.push(fixture::order(app, &buyer, &item_id, 1).await?);
        to_pay.push(fixture::order(app, &buyer, &item_id, 1).await?);
    }
    let token = Some(buyer.access.as_str());
    let mut cancel = Recorder::new("order-cancel", "pending order", n);
    for (order_id, _) in &to_cancel {
        let path = format!("/order/{order_id}/cancel");
        cancel.record(&caller.call("DELETE", &path, None, token).await?, 200);
    }
    out.push(cancel.finish());
    let mut pay = Recorder::new("payment-create", "one part, no Idempotency-Key", n);
    for (order_id, total) in &to_pay {
        let body =
            json!({ "orderId": order_id, "payments": [{ "amount": total, "type": "CARD" }] });
        pay.record(
            &caller.call("POST", "/payment", Some(&body), token).await?,
            200,
        );
    }
    out.push(pay.finish());
    Ok(out)
}
