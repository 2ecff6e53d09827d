//! The web screens' server side (docs/site.md): `site/` served by cafe-local at `/` with the
//! right content types and nothing outside it; `CAFE_DEV_ADMIN`'s development admin (refused in
//! production); `GET /shop/board`, the pickup display's numbers and nothing else.

use cafe::domain::Role;
use cafe_local::testing::{SignedUp, TestApp, request};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COLA: &str = "01JC0FFEE00000000000000C01";

async fn ok(t: &TestApp, req: lambda_http::Request, status: u16) -> Value {
    let (got, body) = t.call(req).await;
    assert_eq!(got, status, "{body}");
    body["result"].clone()
}

async fn paid_order(t: &TestApp, member: &SignedUp) -> (String, i64) {
    let placed = ok(
        t,
        request("POST", "/order")
            .bearer(&member.access)
            .json(&json!({"items": [{"itemId": COLA, "quantity": 1}]}))
            .build(),
        201,
    )
    .await;
    let order_id = placed["orderId"].as_str().unwrap_or_default().to_owned();
    let paid = ok(
        t,
        request("POST", "/payment")
            .bearer(&member.access)
            .json(&json!({"orderId": order_id, "payments": [{"amount": 1500, "type": "CARD"}]}))
            .build(),
        200,
    )
    .await;
    let number = paid["pickupNumber"].as_i64().unwrap_or_default();
    (order_id, number)
}

async fn step(t: &TestApp, clerk: &SignedUp, order_id: &str, status: &str) {
    ok(
        t,
        request("PUT", &format!("/admin/orders/{order_id}/status"))
            .bearer(&clerk.access)
            .json(&json!({"status": status}))
            .build(),
        200,
    )
    .await;
}

async fn board(t: &TestApp) -> Value {
    ok(t, request("GET", "/shop/board").build(), 200).await
}

#[tokio::test]
async fn the_board_shows_todays_numbers_being_made_and_ready_and_nothing_else() {
    let t = TestApp::new().await;
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    let customer = t.sign_up().await;
    assert_eq!(board(&t).await["making"], json!([]));
    let (first, one) = paid_order(&t, &customer).await;
    t.clock.advance(chrono::Duration::seconds(1));
    let (_second, two) = paid_order(&t, &customer).await;
    t.clock.advance(chrono::Duration::seconds(1));
    let (third, three) = paid_order(&t, &customer).await;
    assert_eq!((one, two, three), (1, 2, 3));

    let seen = board(&t).await;
    assert_eq!(seen["making"], json!([1, 2, 3]), "{seen}");
    assert_eq!(seen["ready"], json!([]), "{seen}");
    // Nothing but the numbers and the time: no order id, member, name or amount.
    let keys: Vec<&String> = seen
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["at", "making", "ready"], "{seen}");
    assert!(!seen.to_string().contains(&first), "{seen}");

    step(&t, &clerk, &third, "PREPARING").await;
    step(&t, &clerk, &third, "READY").await;
    step(&t, &clerk, &first, "PREPARING").await;
    step(&t, &clerk, &first, "READY").await;
    let seen = board(&t).await;
    assert_eq!(seen["making"], json!([2]), "{seen}");
    // Oldest first, by when they were paid.
    assert_eq!(seen["ready"], json!([1, 3]), "{seen}");

    step(&t, &clerk, &first, "PICKED_UP").await;
    assert_eq!(board(&t).await["ready"], json!([3]));

    // The next business day numbers start again at 1: yesterday's are not shown.
    t.clock.advance(chrono::Duration::days(1));
    let seen = board(&t).await;
    assert_eq!(
        (&seen["making"], &seen["ready"]),
        (&json!([]), &json!([])),
        "{seen}"
    );
}

#[tokio::test]
async fn the_development_admin_can_use_the_board() {
    let t = TestApp::new().await;
    let member_id = cafe_local::dev_admin::create(&t.app, "barista@cafe.test:a long password")
        .await
        .expect("a development admin on the in-memory store");
    let (status, login) = t
        .call(
            request("POST", "/auth/login")
                .json(&json!({"email": "barista@cafe.test", "password": "a long password"}))
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["result"]["memberId"], member_id.as_str());
    let access = login["result"]["accessToken"].as_str().unwrap_or_default();
    let items = ok(
        &t,
        request("GET", "/admin/items").bearer(access).build(),
        200,
    )
    .await;
    assert!(items.as_array().is_some_and(|i| i.len() == 2), "{items}");
    let (status, _) = t
        .call(
            request("PUT", "/admin/shop")
                .bearer(access)
                .json(&json!({"open": false}))
                .build(),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_development_admin_is_refused_in_production_and_when_malformed() {
    let mut config = cafe::testing::test_config();
    config.production = true;
    let t = TestApp::with_config(config).await;
    let refused = cafe_local::dev_admin::create(&t.app, "barista@cafe.test:a long password")
        .await
        .expect_err("refused in production");
    assert!(refused.contains("refused in production"), "{refused}");
    assert!(!refused.contains("a long password"), "{refused}");
    let (status, _) = t
        .call(
            request("POST", "/auth/login")
                .json(&json!({"email": "barista@cafe.test", "password": "a long password"}))
                .build(),
        )
        .await;
    assert_eq!(status, 401, "no member was made");

    let t = TestApp::new().await;
    for bad in ["no-colon", "not-an-email:password", "a@b.c:"] {
        let error = cafe_local::dev_admin::create(&t.app, bad)
            .await
            .expect_err(bad);
        assert!(error.contains("email:password"), "{error}");
    }
}

/// A request written byte for byte (no client normalises its path), and the whole answer.
async fn raw_get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: cafe\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_site_is_served_beside_the_api_and_nothing_outside_it() {
    let t = TestApp::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(cafe_local::serve(listener, Arc::new(t.app)));

    for (path, content_type, contains) in [
        ("/", "text/html; charset=utf-8", "<title>Cafe"),
        ("/board.html", "text/html; charset=utf-8", "Barista board"),
        ("/display.html", "text/html; charset=utf-8", "Pickup"),
        (
            "/js/api.js",
            "text/javascript; charset=utf-8",
            "Idempotency",
        ),
        ("/css/site.css", "text/css; charset=utf-8", "--brand"),
    ] {
        let answer = raw_get(address, path).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains(&format!("content-type: {content_type}")),
            "{path}: {answer}"
        );
        assert!(answer.contains("x-content-type-options: nosniff"), "{path}");
        assert!(answer.contains(contains), "{path}");
    }
    // The API is still the API.
    let answer = raw_get(address, "/shop/board").await;
    assert!(answer.contains("\"making\""), "{answer}");

    for path in [
        "/../Cargo.toml",
        "/js/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/js/..%2f..%2fREADME.md",
        "/.git/config",
        "/nothing-here.html",
        "/js/",
    ] {
        let answer = raw_get(address, path).await;
        assert!(
            answer.starts_with("HTTP/1.1 404") && answer.contains("404CO000"),
            "{path}: {answer}"
        );
        assert!(!answer.contains("[package]"), "{path} leaked a file");
    }
}
