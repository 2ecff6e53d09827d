//! The live channel's fan-out, measured (issue 27, part 6; numbers in `BENCHMARKS.md`):
//! `LIVE_BENCH_CLIENTS` WebSocket clients (default 1,000: a tenth staff on `orders`, the rest
//! anonymous displays) on the local server, then a burst of status changes (`LIVE_BENCH_ORDERS`
//! paid orders, default 20, each moved PREPARING → READY → PICKED_UP as fast as the staff calls
//! go). Latency is from the commit (the instant the store hands the write's events to its log,
//! heard by a watcher of that log) to each client's receipt; memory is the process's RSS growth
//! over the connections (server and client halves both live in this process: an upper bound of
//! the server's share).
//!
//! `LIVE_BENCH_PACE_MS=N` spaces the changes N ms apart instead (latency without a queue).
//!
//! Ignored: `cargo test --release -p cafe-local --test live_bench -- --ignored --nocapture`.

use cafe::App;
use cafe::domain::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn ok(app: &App, req: lambda_http::Request) -> Value {
    let (status, body) = cafe_local::testing::call(app, req).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body["result"].clone()
}

/// Receipts: (key, instant), key = `<orderId>/<status>` or `#<pickupNumber>/<status>`.
type Receipts = Arc<Mutex<Vec<(String, Instant)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose (see the module documentation)"]
async fn fan_out_to_a_thousand_clients() {
    let clients = env_number("LIVE_BENCH_CLIENTS", 1000);
    let orders = env_number("LIVE_BENCH_ORDERS", 20);
    // 0: the changes back to back (a burst); else one change every this many milliseconds.
    let pace = Duration::from_millis(env_number("LIVE_BENCH_PACE_MS", 0) as u64);
    let staff_clients = clients / 10;
    let (app, parts) = App::in_memory(
        cafe::testing::test_config(),
        Arc::new(cafe::clock::SystemClock),
    )
    .await
    .expect("app");
    cafe_local::restock_seed_items(&app, 100_000)
        .await
        .expect("stock");
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(cafe_local::serve(listener, app.clone()));

    let staff = cafe_local::testing::staff(&app, Role::Staff).await;
    let customer = cafe_local::testing::sign_up(&app).await;
    // The paid orders first (their own events are not part of the burst).
    let mut paid = Vec::new();
    for _ in 0..orders {
        let order = ok(
            &app,
            cafe_local::testing::request("POST", "/order")
                .bearer(&customer.access)
                .json(&json!({"items": [{"itemId": "01JC0FFEE00000000000000C01", "quantity": 1}]}))
                .build(),
        )
        .await;
        let id = order["orderId"].as_str().expect("id").to_owned();
        let total = order["totalPrice"].as_i64().expect("total");
        ok(
            &app,
            cafe_local::testing::request("POST", "/payment")
                .bearer(&customer.access)
                .json(&json!({"orderId": id, "payments": [{"amount": total, "type": "CARD"}]}))
                .build(),
        )
        .await;
        let read = ok(
            &app,
            cafe_local::testing::request("GET", &format!("/order/{id}"))
                .bearer(&customer.access)
                .build(),
        )
        .await;
        let number = read["pickupNumber"].as_u64().expect("pickup number");
        paid.push((id, number));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let rss_before = rss_kib();
    let receipts: Receipts = Arc::default();
    let connect_started = Instant::now();
    let mut readers = Vec::new();
    for i in 0..clients {
        let url = if i < staff_clients {
            let ticket = ok(
                &app,
                cafe_local::testing::request("POST", "/live/ticket")
                    .bearer(&staff.access)
                    .build(),
            )
            .await["ticket"]
                .as_str()
                .expect("ticket")
                .to_owned();
            format!("ws://{addr}/live?ticket={ticket}")
        } else {
            format!("ws://{addr}/live")
        };
        let topic = if i < staff_clients {
            "orders"
        } else {
            "display"
        };
        let mut client_config =
            tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        client_config.read_buffer_size = 4096;
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(client_config), false)
                .await
                .expect("connect");
        socket
            .send(Message::text(
                json!({"action": "subscribe", "topic": topic}).to_string(),
            ))
            .await
            .expect("subscribe");
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                assert!(text.as_str().contains("subscribed"), "{text}")
            }
            other => panic!("no subscribe answer: {other:?}"),
        }
        let receipts = receipts.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Ok(Some(Ok(frame))) =
                tokio::time::timeout(Duration::from_secs(5), socket.next()).await
            {
                let at = Instant::now();
                if let Message::Text(text) = frame {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let key = match value["type"].as_str() {
                        Some("order") => format!(
                            "{}/{}",
                            value["orderId"].as_str().unwrap_or("?"),
                            value["status"].as_str().unwrap_or("?")
                        ),
                        _ => format!(
                            "#{}/{}",
                            value["pickupNumber"],
                            value["status"].as_str().unwrap_or("?")
                        ),
                    };
                    mine.push((key, at));
                }
            }
            receipts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(mine);
        }));
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();

    // The commit instants, heard as the store hands each write's events to its log.
    let mut committed_batches = parts.events.watch();
    let commits: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let numbers: HashMap<String, u64> = paid.iter().cloned().collect();
    let watcher = {
        let commits = commits.clone();
        tokio::spawn(async move {
            while let Some(batch) = committed_batches.recv().await {
                let at = Instant::now();
                for event in batch {
                    if let Some((order, status)) = cafe::domain::live::status_change(&event) {
                        let mut commits = commits.lock().unwrap_or_else(|p| p.into_inner());
                        commits.insert(format!("{order}/{}", status.as_str()), at);
                        if let Some(number) = numbers.get(&order) {
                            commits.insert(format!("#{number}/{}", status.as_str()), at);
                        }
                    }
                }
            }
        })
    };

    let burst_started = Instant::now();
    for status in ["PREPARING", "READY", "PICKED_UP"] {
        for (order, _) in &paid {
            ok(
                &app,
                cafe_local::testing::request("PUT", &format!("/admin/orders/{order}/status"))
                    .bearer(&staff.access)
                    .json(&json!({"status": status}))
                    .build(),
            )
            .await;
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    }
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    for reader in readers {
        reader.await.expect("reader");
    }
    watcher.abort();

    let commits = commits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let receipts = receipts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<f64> = receipts
        .iter()
        .filter_map(|(key, at)| {
            commits
                .get(key)
                .map(|committed| at.saturating_duration_since(*committed).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let changes = orders * 3;
    let expected = changes * clients;
    println!(
        "live fan-out: {clients} clients ({staff_clients} staff on orders, the rest displays), {changes} status changes in {burst_seconds:.2} s (pace {pace:?})"
    );
    println!("connected and subscribed in {connect_seconds:.2} s");
    println!(
        "messages received {} of {expected} expected; commit → receipt p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "RSS {rss_before} KiB → {rss_after} KiB: {:.1} KiB per connection (server and client halves together)",
        (rss_after.saturating_sub(rss_before)) as f64 / clients as f64
    );
    assert_eq!(latencies.len(), expected, "every client got every change");
}
