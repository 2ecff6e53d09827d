//! `HttpGateway` against the real `cafe-pg` server: charge, repeat, find, refund, refund again
//! (the same way as `MockGateway`), a decline, a dropped answer, a server that is not running, a
//! latency above the timeout, a refused secret key, a kill -9 of the server.
//!
//! Which `cafe-pg` runs: `$CAFE_PG_BIN` if set (it must be the binary); otherwise the test runs
//! `cargo build -p cafe-pg --message-format=json` once (a no-op when it is fresh) and runs the
//! executable Cargo reports. That always tests the current source, works with any target
//! directory (`CARGO_TARGET_DIR`, `--target`), and spawns the server itself rather than a
//! `cargo run` wrapper, so kill -9 reaches the server. If the binary cannot be built or
//! started, the tests fail saying so; they never skip.

use cafe::Error;
use cafe::domain::PaymentType;
use cafe::gateway::{Charge, HttpGateway, Ledger, MockGateway, PaymentGateway};
use cafe::testing::pg::{Pg, temp_dir};
use std::time::{Duration, Instant};

use cafe::testing::pg::SECRET;
const UNAVAILABLE: Error = Error::Unavailable("payment gateway");

fn charge<'a>(key: &'a str, order: &'a str, amount: i64) -> Charge<'a> {
    Charge {
        idempotency_key: key,
        order_id: order,
        payment_type: PaymentType::Card,
        amount,
    }
}

/// The same calls on any gateway; what they answered, with transaction ids replaced by the
/// key they were charged under, so two gateways can be compared.
async fn scenario(gateway: &dyn PaymentGateway) -> Vec<String> {
    let mut seen = Vec::new();
    let first = gateway
        .charge(&charge("att1:0", "order-1", 1_500))
        .await
        .expect("charged");
    assert!(!first.is_empty());
    // The same key: the same id, nothing charged again.
    assert_eq!(
        gateway.charge(&charge("att1:0", "order-1", 1_500)).await,
        Ok(first.clone())
    );
    let second = gateway
        .charge(&charge("att1:1", "order-1", 500))
        .await
        .expect("charged");
    assert_ne!(first, second);
    assert_eq!(gateway.find_charge("att1:0").await, Ok(Some(first.clone())));
    assert_eq!(
        gateway.find_charge("att1:1").await,
        Ok(Some(second.clone()))
    );
    assert_eq!(gateway.find_charge("att9:0").await, Ok(None));
    seen.push("charged twice".to_owned());

    gateway
        .refund(&first, 1_500, "refund:att1:0")
        .await
        .expect("refunded");
    // Again, with the same key and with another: success, no second refund.
    gateway
        .refund(&first, 1_500, "refund:att1:0")
        .await
        .expect("again");
    gateway
        .refund(&first, 1_500, "refund2:att1:0")
        .await
        .expect("again, another key");
    // A refunded charge still counts as charged.
    assert_eq!(gateway.find_charge("att1:0").await, Ok(Some(first.clone())));
    assert_eq!(
        gateway.refund("pg_unknown", 1, "refund:x").await,
        Err(Error::GatewayFailed)
    );
    seen.push("refunded once".to_owned());
    seen
}

/// A ledger with its ids replaced by keys: `(key, order, amount, refunded)`.
fn shape(ledger: &Ledger) -> Vec<(String, String, i64, bool)> {
    ledger
        .charges
        .iter()
        .map(|c| {
            (
                c.idempotency_key.clone(),
                c.order_id.clone(),
                c.amount,
                ledger.refunds.contains(&c.pg_transaction_id),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_repeat_find_refund_and_refund_again_as_the_mock_does() {
    let dir = temp_dir("scenario");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &[]);
    let http = pg.gateway(Duration::from_secs(5));
    let mock = MockGateway::new(cafe::config::GatewayConfig {
        max_latency: Duration::ZERO,
        ..Default::default()
    });
    assert_eq!(scenario(&http).await, scenario(&mock).await);

    let (http_ledger, mock_ledger) = (http.ledger().await.expect("ledger"), mock.ledger());
    assert_eq!(shape(&http_ledger), shape(&mock_ledger));
    assert_eq!(
        shape(&http_ledger),
        vec![
            ("att1:0".into(), "order-1".into(), 1_500, true),
            ("att1:1".into(), "order-1".into(), 500, false),
        ]
    );
    assert_eq!(http_ledger.refunds.len(), 1);
    assert_eq!(http_ledger.net_for_order("order-1"), 500);
    assert_eq!(mock_ledger.net_for_order("order-1"), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_is_gateway_failed_and_charges_nothing() {
    let dir = temp_dir("decline");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &["--failure-rate", "1"]);
    let gateway = pg.gateway(Duration::from_secs(5));
    let key_charge = charge("d:0", "order-d", 700);
    assert_eq!(gateway.charge(&key_charge).await, Err(Error::GatewayFailed));
    // The decline is remembered under the key.
    assert_eq!(gateway.charge(&key_charge).await, Err(Error::GatewayFailed));
    assert_eq!(gateway.find_charge("d:0").await, Ok(None));
    // The same key with another body is refused too.
    assert_eq!(
        gateway.charge(&charge("d:0", "order-d", 800)).await,
        Err(Error::GatewayFailed)
    );
    assert!(gateway.ledger().await.expect("ledger").charges.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_answer_is_unavailable_and_find_charge_finds_it() {
    let dir = temp_dir("drop");
    let pg = Pg::start(&dir.join("ledger.jsonl"), &["--drop-rate", "1"]);
    let gateway = pg.gateway(Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(
        gateway.charge(&charge("drop:0", "order-x", 4_000)).await,
        Err(UNAVAILABLE)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no answer is noticed at once"
    );
    let found = gateway
        .find_charge("drop:0")
        .await
        .expect("a lookup")
        .expect("it was charged");
    // The repeat answers it (only new changes are dropped): the caller can settle.
    assert_eq!(
        gateway.charge(&charge("drop:0", "order-x", 4_000)).await,
        Ok(found.clone())
    );
    // A dropped cancel: unknown; repeating it succeeds, refunding once.
    assert_eq!(
        gateway.refund(&found, 4_000, "refund:drop:0").await,
        Err(UNAVAILABLE)
    );
    assert_eq!(gateway.refund(&found, 4_000, "refund:drop:0").await, Ok(()));
    let ledger = gateway.ledger().await.expect("ledger");
    assert_eq!(ledger.charges.len(), 1);
    assert_eq!(ledger.refunds, vec![found]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_is_not_running_is_unavailable_within_the_timeout() {
    // Connection refused: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let timeout = Duration::from_millis(800);
    let gateway =
        HttpGateway::new(&format!("http://127.0.0.1:{port}"), SECRET, timeout).expect("gateway");
    let started = Instant::now();
    assert_eq!(
        gateway.charge(&charge("n:0", "order-n", 1)).await,
        Err(UNAVAILABLE)
    );
    assert_eq!(gateway.refund("tpk_x", 1, "r:0").await, Err(UNAVAILABLE));
    assert_eq!(gateway.find_charge("n:0").await, Err(UNAVAILABLE));
    assert!(gateway.ledger().await.is_err());
    assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());

    // A server that accepts and never answers: the whole call is cut at the timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let address = silent.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            connections.push(stream);
        }
    });
    let gateway = HttpGateway::new(&format!("http://{address}"), SECRET, timeout).expect("gateway");
    let started = Instant::now();
    assert_eq!(
        gateway.charge(&charge("n:1", "order-n", 1)).await,
        Err(UNAVAILABLE)
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(1),
        "{elapsed:?}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_above_the_timeout_is_unavailable() {
    let dir = temp_dir("slow");
    let pg = Pg::start(
        &dir.join("ledger.jsonl"),
        &["--min-latency-ms", "1500", "--max-latency-ms", "1500"],
    );
    let timeout = Duration::from_millis(300);
    let hasty = pg.gateway(timeout);
    let started = Instant::now();
    assert_eq!(
        hasty.charge(&charge("s:0", "order-s", 1_000)).await,
        Err(UNAVAILABLE)
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(1),
        "{elapsed:?}"
    );
    assert_eq!(hasty.find_charge("s:0").await, Err(UNAVAILABLE));
    // The gateway went on and charged: that is why the outcome was "unknown", and why the
    // reconciler looks it up.
    let patient = pg.gateway(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let found = patient.find_charge("s:0").await.expect("a lookup");
    assert!(
        found.is_some(),
        "the charge went through after the caller gave up"
    );
    assert_eq!(
        patient.charge(&charge("s:0", "order-s", 1_000)).await,
        Ok(found.expect("found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_key_and_a_key_still_processing_are_unavailable() {
    let dir = temp_dir("refused");
    let pg = Pg::start(
        &dir.join("ledger.jsonl"),
        &["--min-latency-ms", "400", "--max-latency-ms", "400"],
    );
    let wrong =
        HttpGateway::new(&pg.base, "test_sk_wrong", Duration::from_secs(5)).expect("gateway");
    assert_eq!(
        wrong.charge(&charge("w:0", "order-w", 1)).await,
        Err(UNAVAILABLE)
    );
    assert_eq!(wrong.find_charge("w:0").await, Err(UNAVAILABLE));
    assert_eq!(wrong.refund("tpk_x", 1, "r:0").await, Err(UNAVAILABLE));

    // Ten callers with one key at once: one charge; the others hear 409, an unknown outcome.
    let gateway = std::sync::Arc::new(pg.gateway(Duration::from_secs(5)));
    let mut calls = Vec::new();
    for _ in 0..10 {
        let gateway = gateway.clone();
        calls.push(tokio::spawn(async move {
            gateway.charge(&charge("same:0", "order-s", 2_000)).await
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("task"));
    }
    let charged: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert!(!charged.is_empty(), "{answers:?}");
    assert!(charged.iter().all(|id| *id == charged[0]), "{answers:?}");
    assert!(
        answers.iter().all(|a| a.is_ok() || *a == Err(UNAVAILABLE)),
        "{answers:?}"
    );
    let ledger = gateway.ledger().await.expect("ledger");
    assert_eq!(ledger.charges.len(), 1, "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_charged_survives_a_kill_9_of_the_server() {
    let dir = temp_dir("restart");
    let path = dir.join("ledger.jsonl");
    let mut pg = Pg::start(&path, &[]);
    let gateway = pg.gateway(Duration::from_secs(5));
    let kept = gateway
        .charge(&charge("k:0", "order-k", 1_000))
        .await
        .expect("charged");
    let refunded = gateway
        .charge(&charge("k:1", "order-k", 2_000))
        .await
        .expect("charged");
    gateway
        .refund(&refunded, 2_000, "refund:k:1")
        .await
        .expect("refunded");
    let before = shape(&gateway.ledger().await.expect("ledger"));
    pg.kill9();
    assert_eq!(gateway.find_charge("k:0").await, Err(UNAVAILABLE));

    let pg = Pg::start(&path, &[]);
    let gateway = pg.gateway(Duration::from_secs(5));
    assert_eq!(shape(&gateway.ledger().await.expect("ledger")), before);
    assert_eq!(gateway.find_charge("k:0").await, Ok(Some(kept.clone())));
    assert_eq!(
        gateway.charge(&charge("k:0", "order-k", 1_000)).await,
        Ok(kept)
    );
    assert_eq!(gateway.refund(&refunded, 2_000, "refund:k:1").await, Ok(()));
    assert_eq!(
        gateway.ledger().await.expect("ledger").refunds,
        vec![refunded]
    );
}
