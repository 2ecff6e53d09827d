//! The real `cafe-pg` binary on a temporary ledger: every endpoint and error, the idempotency
//! rules, kill -9 and restart, a torn last line, and dropped answers.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cafe-pg");
const SECRET: &str = "test_sk_cafe";

/// A fresh directory under the target's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cafe-pg-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A running `cafe-pg`; killed (SIGKILL) when dropped.
struct Pg {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Pg {
    fn start(ledger: &Path, args: &[&str]) -> Pg {
        Self::try_start(ledger, args, &[]).unwrap_or_else(|error| panic!("{error}"))
    }

    fn try_start(ledger: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Pg, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let stderr =
            ledger.with_extension(format!("stderr-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let mut command = Command::new(BIN);
        for (name, _) in std::env::vars() {
            if name.starts_with("PG_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--port", "0", "--ledger"])
            .arg(ledger)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .map_err(|error| format!("cannot start {BIN}: {error}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        match line.trim().strip_prefix("cafe-pg listening on ") {
            Some(base) => Ok(Pg {
                child,
                base: base.to_owned(),
                stderr,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "cafe-pg did not start (exit {status:?}, stdout {line:?}); stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ))
            }
        }
    }

    /// SIGKILL: no chance to flush or clean up anything.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

async fn post(pg: &Pg, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client()
        .post(pg.url(path))
        .basic_auth(SECRET, Some(""))
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    answer(request).await
}

async fn get(pg: &Pg, path: &str) -> (u16, Value) {
    answer(client().get(pg.url(path)).basic_auth(SECRET, Some(""))).await
}

async fn confirm(pg: &Pg, key: &str, order: &str, amount: i64) -> (u16, Value) {
    post(
        pg,
        "/v1/payments/confirm",
        Some(key),
        &json!({"orderId": order, "amount": amount, "method": "CARD"}),
    )
    .await
}

async fn cancel(pg: &Pg, payment_key: &str, key: &str) -> (u16, Value) {
    post(
        pg,
        &format!("/v1/payments/{payment_key}/cancel"),
        Some(key),
        &json!({"cancelReason": "order canceled"}),
    )
    .await
}

async fn ledger(pg: &Pg) -> Value {
    let (status, body) = get(pg, "/v1/ledger").await;
    assert_eq!(status, 200, "{body}");
    body
}

fn charges(ledger: &Value) -> &Vec<Value> {
    ledger["charges"].as_array().expect("charges")
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
    assert_eq!(
        answer.1.as_object().map(|o| o.len()),
        Some(2),
        "only code and message: {}",
        answer.1
    );
}

#[tokio::test]
async fn a_confirm_charges_once_and_a_repeat_answers_it_again() {
    let dir = temp_dir("confirm");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &[]);

    let (status, first) = confirm(&pg, "att1:0", "order-1", 1_500).await;
    assert_eq!(status, 200, "{first}");
    let payment_key = first["paymentKey"].as_str().expect("paymentKey").to_owned();
    assert!(!payment_key.is_empty());
    assert_eq!(first["orderId"], "order-1");
    assert_eq!(first["status"], "DONE");
    assert_eq!(first["totalAmount"], 1_500);
    assert_eq!(first["method"], "CARD");
    assert_eq!(first["idempotencyKey"], "att1:0");
    let approved = first["approvedAt"].as_str().expect("approvedAt");
    chrono::DateTime::parse_from_rfc3339(approved).expect("RFC 3339");

    // Same key, same body: the first answer again, nothing charged.
    let again = confirm(&pg, "att1:0", "order-1", 1_500).await;
    assert_eq!(again, (200, first.clone()));
    // Same key, another body: 422.
    assert_error(
        &confirm(&pg, "att1:0", "order-1", 1_600).await,
        422,
        "INVALID_REQUEST",
    );
    assert_error(
        &confirm(&pg, "att1:0", "order-2", 1_500).await,
        422,
        "INVALID_REQUEST",
    );
    // Another key: another charge.
    let (status, second) = confirm(&pg, "att1:1", "order-1", 500).await;
    assert_eq!(status, 200);
    assert_ne!(second["paymentKey"], first["paymentKey"]);

    let ledger = ledger(&pg).await;
    assert_eq!(
        charges(&ledger),
        &vec![
            json!({"paymentKey": payment_key, "orderId": "order-1", "amount": 1500,
                   "idempotencyKey": "att1:0", "status": "DONE"}),
            json!({"paymentKey": second["paymentKey"], "orderId": "order-1", "amount": 500,
                   "idempotencyKey": "att1:1", "status": "DONE"}),
        ]
    );

    let (status, found) = get(&pg, "/v1/payments/by-idempotency-key/att1:0").await;
    assert_eq!((status, &found["paymentKey"]), (200, &first["paymentKey"]));
    // Percent-encoded keys are decoded.
    let (status, found) = get(&pg, "/v1/payments/by-idempotency-key/att1%3A1").await;
    assert_eq!((status, &found["paymentKey"]), (200, &second["paymentKey"]));
    assert_error(
        &get(&pg, "/v1/payments/by-idempotency-key/att9:0").await,
        404,
        "NOT_FOUND_PAYMENT",
    );
    let (status, by_key) = get(&pg, &format!("/v1/payments/{payment_key}")).await;
    assert_eq!((status, by_key), (200, first));
    assert_error(
        &get(&pg, "/v1/payments/tpk_nope").await,
        404,
        "NOT_FOUND_PAYMENT",
    );
}

#[tokio::test]
async fn a_cancel_refunds_once() {
    let dir = temp_dir("cancel");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &[]);
    let (_, first) = confirm(&pg, "c:0", "order-c", 2_000).await;
    let payment_key = first["paymentKey"].as_str().unwrap().to_owned();
    let (_, other) = confirm(&pg, "c:1", "order-c", 100).await;
    let other_key = other["paymentKey"].as_str().unwrap().to_owned();

    let (status, canceled) = cancel(&pg, &payment_key, "r:0").await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "CANCELED");
    assert_eq!(canceled["paymentKey"], payment_key.as_str());
    assert_eq!(canceled["balanceAmount"], 0);
    assert_eq!(canceled["cancels"][0]["cancelAmount"], 2_000);
    assert_eq!(canceled["cancels"][0]["cancelReason"], "order canceled");
    assert_eq!(canceled["cancels"][0]["idempotencyKey"], "r:0");

    // Again with the same key, and with another one: 200, the same cancel, no second refund.
    assert_eq!(
        cancel(&pg, &payment_key, "r:0").await,
        (200, canceled.clone())
    );
    assert_eq!(
        cancel(&pg, &payment_key, "r:1").await,
        (200, canceled.clone())
    );
    // The cancel key reused for another payment: 422.
    assert_error(
        &cancel(&pg, &other_key, "r:0").await,
        422,
        "INVALID_REQUEST",
    );
    // Unknown payment: 404.
    assert_error(
        &cancel(&pg, "tpk_unknown", "r:2").await,
        404,
        "NOT_FOUND_PAYMENT",
    );
    // Partial cancels are refused; the whole amount is fine.
    assert_error(
        &post(
            &pg,
            &format!("/v1/payments/{other_key}/cancel"),
            Some("r:3"),
            &json!({"cancelReason": "x", "cancelAmount": 50}),
        )
        .await,
        400,
        "NOT_CANCELABLE_AMOUNT",
    );
    let (status, _) = post(
        &pg,
        &format!("/v1/payments/{other_key}/cancel"),
        Some("r:3"),
        &json!({"cancelReason": "x", "cancelAmount": 100}),
    )
    .await;
    assert_eq!(status, 200);

    // The payment found by its confirm key is the cancelled one; a repeated confirm still
    // answers what the confirm answered.
    let (status, found) = get(&pg, "/v1/payments/by-idempotency-key/c:0").await;
    assert_eq!((status, &found["status"]), (200, &json!("CANCELED")));
    assert_eq!(confirm(&pg, "c:0", "order-c", 2_000).await, (200, first));

    let ledger = ledger(&pg).await;
    let statuses: Vec<&Value> = charges(&ledger).iter().map(|c| &c["status"]).collect();
    assert_eq!(statuses, vec!["CANCELED", "CANCELED"]);
    let text = std::fs::read_to_string(dir.join("ledger.jsonl")).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("\"canceled\"")).count(),
        2,
        "one cancel record per payment:\n{text}"
    );
}

#[tokio::test]
async fn every_error_is_json_with_a_code() {
    let dir = temp_dir("errors");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &[]);
    let body = json!({"orderId": "o", "amount": 1, "method": "CARD"});

    // Authorization: missing, wrong key, wrong scheme, no colon, on every endpoint.
    for path in [
        "/v1/payments/confirm",
        "/v1/payments/x/cancel",
        "/v1/payments/by-idempotency-key/k",
        "/v1/ledger",
        "/nowhere",
    ] {
        let bare = answer(client().post(pg.url(path)).json(&body)).await;
        assert_error(&bare, 401, "UNAUTHORIZED_KEY");
        let wrong = answer(
            client()
                .get(pg.url(path))
                .basic_auth("test_sk_other", Some("")),
        )
        .await;
        assert_error(&wrong, 401, "UNAUTHORIZED_KEY");
        let bearer = answer(client().get(pg.url(path)).bearer_auth(SECRET)).await;
        assert_error(&bearer, 401, "UNAUTHORIZED_KEY");
        let with_password = answer(client().get(pg.url(path)).basic_auth(SECRET, Some("x"))).await;
        assert_error(&with_password, 401, "UNAUTHORIZED_KEY");
    }

    // Idempotency-Key: required, 1–300 visible ASCII.
    assert_error(
        &post(&pg, "/v1/payments/confirm", None, &body).await,
        400,
        "INVALID_REQUEST",
    );
    for bad in [String::new(), "a b".into(), "k".repeat(301)] {
        assert_error(
            &post(&pg, "/v1/payments/confirm", Some(&bad), &body).await,
            400,
            "INVALID_REQUEST",
        );
    }
    let longest = "k".repeat(300);
    assert_eq!(
        post(&pg, "/v1/payments/confirm", Some(&longest), &body)
            .await
            .0,
        200
    );
    assert_error(
        &post(
            &pg,
            "/v1/payments/x/cancel",
            None,
            &json!({"cancelReason": "r"}),
        )
        .await,
        400,
        "INVALID_REQUEST",
    );

    // Bodies.
    for bad in [
        json!([]),
        json!({"amount": 1, "method": "CARD"}),
        json!({"orderId": "", "amount": 1, "method": "CARD"}),
        json!({"orderId": "o".repeat(65), "amount": 1, "method": "CARD"}),
        json!({"orderId": "o", "amount": 0, "method": "CARD"}),
        json!({"orderId": "o", "amount": -5, "method": "CARD"}),
        json!({"orderId": "o", "amount": 1.5, "method": "CARD"}),
        json!({"orderId": "o", "amount": "1", "method": "CARD"}),
        json!({"orderId": "o", "amount": 1}),
        json!({"orderId": "o", "amount": 1, "method": "card"}),
    ] {
        assert_error(
            &post(&pg, "/v1/payments/confirm", Some("b:0"), &bad).await,
            400,
            "INVALID_REQUEST",
        );
    }
    let not_json = answer(
        client()
            .post(pg.url("/v1/payments/confirm"))
            .basic_auth(SECRET, Some(""))
            .header("Idempotency-Key", "b:1")
            .body("{not json"),
    )
    .await;
    assert_error(&not_json, 400, "INVALID_REQUEST");
    let too_big = answer(
        client()
            .post(pg.url("/v1/payments/confirm"))
            .basic_auth(SECRET, Some(""))
            .header("Idempotency-Key", "b:2")
            .body(vec![b' '; 70_000]),
    )
    .await;
    assert_error(&too_big, 400, "INVALID_REQUEST");
    for bad in [
        json!({}),
        json!({"cancelReason": ""}),
        json!({"cancelReason": 5}),
    ] {
        assert_error(
            &post(&pg, "/v1/payments/x/cancel", Some("r:0"), &bad).await,
            400,
            "INVALID_REQUEST",
        );
    }

    // Routes and methods.
    assert_error(&get(&pg, "/nowhere").await, 404, "NOT_FOUND");
    assert_error(
        &get(&pg, "/v1/payments/confirm/x/y").await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &get(&pg, "/v1/payments/confirm").await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_error(
        &post(&pg, "/v1/ledger", None, &json!({})).await,
        405,
        "METHOD_NOT_ALLOWED",
    );

    // None of it charged anything but the one valid confirm.
    assert_eq!(charges(&ledger(&pg).await).len(), 1);
}

#[tokio::test]
async fn the_secret_key_comes_from_the_flag_or_the_variable() {
    let dir = temp_dir("secret");
    let from_env =
        Pg::try_start(&dir.join("a.jsonl"), &[], &[("PG_SECRET_KEY", "sk_env")]).expect("started");
    let from_flag = Pg::try_start(
        &dir.join("b.jsonl"),
        &["--secret-key", "sk_flag"],
        &[("PG_SECRET_KEY", "sk_env")],
    )
    .expect("started");
    for (pg, good, bad) in [
        (&from_env, "sk_env", SECRET),
        (&from_flag, "sk_flag", "sk_env"),
    ] {
        let ok = answer(
            client()
                .get(pg.url("/v1/ledger"))
                .basic_auth(good, Some("")),
        )
        .await;
        assert_eq!(ok.0, 200);
        let refused = answer(client().get(pg.url("/v1/ledger")).basic_auth(bad, Some(""))).await;
        assert_error(&refused, 401, "UNAUTHORIZED_KEY");
        assert!(
            !pg.stderr().contains(good),
            "the secret key is never logged:\n{}",
            pg.stderr()
        );
    }
}

#[tokio::test]
async fn a_decline_charges_nothing_and_is_remembered_under_its_key() {
    let dir = temp_dir("decline");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &["--failure-rate", "1"]);
    let declined = confirm(&pg, "d:0", "order-d", 700).await;
    assert_error(&declined, 400, "REJECT_CARD_PAYMENT");
    assert_eq!(confirm(&pg, "d:0", "order-d", 700).await, declined);
    assert_error(
        &confirm(&pg, "d:0", "order-d", 800).await,
        422,
        "INVALID_REQUEST",
    );
    assert_error(
        &get(&pg, "/v1/payments/by-idempotency-key/d:0").await,
        404,
        "NOT_FOUND_PAYMENT",
    );
    let ledger_now = ledger(&pg).await;
    assert!(charges(&ledger_now).is_empty());
    assert_eq!(ledger_now["declines"][0]["idempotencyKey"], "d:0");
    assert_eq!(ledger_now["declines"][0]["code"], "REJECT_CARD_PAYMENT");

    // After a restart without declines the key still answers its decline; a new key charges.
    pg.kill9();
    let pg = Pg::start(&path, &[]);
    assert_eq!(confirm(&pg, "d:0", "order-d", 700).await, declined);
    assert_eq!(confirm(&pg, "d:1", "order-d", 700).await.0, 200);
    assert_eq!(charges(&ledger(&pg).await).len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_confirms_with_one_key_charge_once() {
    let dir = temp_dir("concurrent");
    let pg = Pg::start(
        &dir.join("ledger.jsonl"),
        &["--min-latency-ms", "300", "--max-latency-ms", "300"],
    );
    let pg = std::sync::Arc::new(pg);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let pg = pg.clone();
        tasks.push(tokio::spawn(async move {
            confirm(&pg, "same:0", "order-x", 9_000).await
        }));
    }
    // While it is being processed, the reconciler's lookup says so instead of "not found".
    tokio::time::sleep(Duration::from_millis(100)).await;
    let in_flight = get(&pg, "/v1/payments/by-idempotency-key/same:0").await;
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let done: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    let processing = answers
        .iter()
        .filter(|answer| answer.0 == 409 && answer.1["code"] == "ALREADY_PROCESSING_REQUEST")
        .count();
    assert!(!done.is_empty(), "{answers:?}");
    assert_eq!(done.len() + processing, 20, "{answers:?}");
    assert!(processing >= 1, "{answers:?}");
    assert!(
        done.iter()
            .all(|body| body["paymentKey"] == done[0]["paymentKey"])
    );
    assert_error(&in_flight, 409, "ALREADY_PROCESSING_REQUEST");

    let ledger = ledger(&pg).await;
    assert_eq!(charges(&ledger).len(), 1, "exactly one charge: {ledger}");
    assert_eq!(charges(&ledger)[0]["paymentKey"], done[0]["paymentKey"]);
    // Afterwards the key answers the charge.
    let (status, body) = confirm(&pg, "same:0", "order-x", 9_000).await;
    assert_eq!((status, &body["paymentKey"]), (200, &done[0]["paymentKey"]));

    // Concurrent cancels of one payment with two keys: one refund.
    let payment_key = body["paymentKey"].as_str().unwrap().to_owned();
    let (a, b) = tokio::join!(
        cancel(&pg, &payment_key, "x:a"),
        cancel(&pg, &payment_key, "x:b")
    );
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&200), "{a:?} {b:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{a:?} {b:?}"
    );
    let text = std::fs::read_to_string(dir.join("ledger.jsonl")).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("\"canceled\"")).count(),
        1
    );
}

#[tokio::test]
async fn kill_9_and_a_restart_on_the_same_ledger_keep_everything() {
    let dir = temp_dir("restart");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &[]);
    let (_, kept) = confirm(&pg, "k:0", "order-k", 1_000).await;
    let (_, refunded) = confirm(&pg, "k:1", "order-k", 2_000).await;
    let refunded_key = refunded["paymentKey"].as_str().unwrap().to_owned();
    let (_, canceled) = cancel(&pg, &refunded_key, "kr:1").await;
    let before = ledger(&pg).await;
    pg.kill9();

    let mut pg = Pg::start(&path, &[]);
    assert_eq!(ledger(&pg).await, before);
    assert_eq!(
        confirm(&pg, "k:0", "order-k", 1_000).await,
        (200, kept.clone())
    );
    assert_eq!(confirm(&pg, "k:1", "order-k", 2_000).await, (200, refunded));
    assert_error(
        &confirm(&pg, "k:0", "order-k", 1).await,
        422,
        "INVALID_REQUEST",
    );
    assert_eq!(
        cancel(&pg, &refunded_key, "kr:1").await,
        (200, canceled.clone())
    );
    assert_eq!(cancel(&pg, &refunded_key, "kr:2").await, (200, canceled));
    let (status, found) = get(&pg, "/v1/payments/by-idempotency-key/k:0").await;
    assert_eq!((status, &found["paymentKey"]), (200, &kept["paymentKey"]));
    assert_eq!(ledger(&pg).await, before);

    // Twice more, with a change in between: still consistent.
    let (_, third) = confirm(&pg, "k:2", "order-k", 3_000).await;
    pg.kill9();
    let pg = Pg::start(&path, &[]);
    let after = ledger(&pg).await;
    assert_eq!(charges(&after).len(), 3);
    assert_eq!(charges(&after)[2]["paymentKey"], third["paymentKey"]);

    // One server per ledger.
    let second = Pg::try_start(&path, &[], &[]).err().expect("refused");
    assert!(second.contains("another cafe-pg"), "{second}");
}

#[tokio::test]
async fn a_torn_last_line_is_ignored_with_a_warning() {
    let dir = temp_dir("torn");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &[]);
    let (_, first) = confirm(&pg, "t:0", "order-t", 1_200).await;
    let before = ledger(&pg).await;
    pg.kill9();

    // A crash mid-write: half a record, no newline.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"type":"charged","idempotencyKey":"t:1","paymentKey":"tpk_x","ord"#)
        .unwrap();
    drop(file);

    let mut pg = Pg::start(&path, &[]);
    assert_eq!(ledger(&pg).await, before);
    assert!(
        pg.stderr().contains("ignoring a torn last line"),
        "a warning:\n{}",
        pg.stderr()
    );
    // The torn key was never answered, so it is free; the file goes on cleanly.
    let (status, second) = confirm(&pg, "t:1", "order-t", 1_300).await;
    assert_eq!(status, 200);
    assert_eq!(confirm(&pg, "t:0", "order-t", 1_200).await, (200, first));
    pg.kill9();
    let pg = Pg::start(&path, &[]);
    let after = ledger(&pg).await;
    assert_eq!(charges(&after).len(), 2);
    assert_eq!(charges(&after)[1]["paymentKey"], second["paymentKey"]);
    assert!(
        !pg.stderr().contains("ignoring a torn"),
        "cut off once:\n{}",
        pg.stderr()
    );
}

#[tokio::test]
async fn a_corrupt_line_before_the_last_refuses_to_start() {
    let dir = temp_dir("corrupt");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &[]);
    confirm(&pg, "x:0", "order-x", 1).await;
    pg.kill9();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("garbage\n{text}")).unwrap();
    let error = Pg::try_start(&path, &[], &[]).err().expect("refused");
    assert!(error.contains("line 1"), "{error}");
}

#[tokio::test]
async fn a_dropped_answer_is_still_recorded() {
    let dir = temp_dir("drop");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &["--drop-rate", "1"]);
    let lost = client()
        .post(pg.url("/v1/payments/confirm"))
        .basic_auth(SECRET, Some(""))
        .header("Idempotency-Key", "drop:0")
        .json(&json!({"orderId": "order-drop", "amount": 4_000, "method": "POINT"}))
        .send()
        .await;
    assert!(lost.is_err(), "no answer: {lost:?}");
    // Reads are never dropped: the charge is there.
    let (status, found) = get(&pg, "/v1/payments/by-idempotency-key/drop:0").await;
    assert_eq!(status, 200);
    let payment_key = found["paymentKey"].as_str().unwrap().to_owned();
    pg.kill9();

    let mut pg = Pg::start(&path, &["--drop-rate", "1"]);
    let ledger_now = ledger(&pg).await;
    assert_eq!(
        charges(&ledger_now),
        &vec![
            json!({"paymentKey": payment_key, "orderId": "order-drop", "amount": 4000,
                     "idempotencyKey": "drop:0", "status": "DONE"})
        ]
    );
    // A repeat answers (only new changes are dropped).
    let (status, repeat) = post(
        &pg,
        "/v1/payments/confirm",
        Some("drop:0"),
        &json!({"orderId": "order-drop", "amount": 4_000, "method": "POINT"}),
    )
    .await;
    assert_eq!(
        (status, repeat["paymentKey"].as_str()),
        (200, Some(payment_key.as_str()))
    );

    // A dropped cancel is recorded too.
    let lost = client()
        .post(pg.url(&format!("/v1/payments/{payment_key}/cancel")))
        .basic_auth(SECRET, Some(""))
        .header("Idempotency-Key", "drop-r:0")
        .json(&json!({"cancelReason": "r"}))
        .send()
        .await;
    assert!(lost.is_err(), "no answer: {lost:?}");
    pg.kill9();
    let pg = Pg::start(&path, &[]);
    assert_eq!(charges(&ledger(&pg).await)[0]["status"], "CANCELED");
}

#[test]
fn the_command_line_is_checked() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let usage = String::from_utf8_lossy(&help.stdout);
    for knob in [
        "--port",
        "PG_PORT",
        "--ledger",
        "PG_LEDGER",
        "--secret-key",
        "PG_SECRET_KEY",
        "--min-latency-ms",
        "--max-latency-ms",
        "--failure-rate",
        "--drop-rate",
    ] {
        assert!(usage.contains(knob), "{knob} in:\n{usage}");
    }
    let no_ledger = Command::new(BIN).env_remove("PG_LEDGER").output().unwrap();
    assert_eq!(no_ledger.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_ledger.stderr).contains("ledger"));
    let bad_rate = Command::new(BIN)
        .args(["--ledger", "/nonexistent/x", "--drop-rate", "1.5"])
        .output()
        .unwrap();
    assert_eq!(bad_rate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_rate.stderr).contains("--drop-rate"));
}
