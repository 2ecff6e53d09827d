//! The local server over real HTTP: a member's whole life through `reqwest`, and the answers the
//! server itself gives (404, 405, 413).

use cafe::App;
use cafe::app::MemoryParts;
use cafe::domain::{EventType, MemberStatus};
use cafe::lock::Lock;
use cafe::store::MemberStore;
use cafe_local::testing::{PASSWORD, sign_up_body};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on a free port, and the store behind it.
async fn start() -> (SocketAddr, MemoryParts) {
    start_with(cafe::testing::test_config()).await
}

async fn start_with(config: cafe::config::Config) -> (SocketAddr, MemoryParts) {
    let (app, parts) = App::in_memory(config, cafe::testing::manual_clock())
        .await
        .expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(cafe_local::serve(listener, Arc::new(app)));
    (address, parts)
}

struct Caller {
    client: Client,
    base: String,
}

impl Caller {
    fn new(address: SocketAddr) -> Self {
        Self {
            client: Client::new(),
            base: format!("http://{address}"),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.send_with(method, path, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        (status, response.json().await.expect("JSON answer"))
    }
}

fn text<'v>(body: &'v Value, field: &str) -> &'v str {
    body["result"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
}

#[tokio::test]
async fn a_member_signs_up_logs_in_withdraws_restores_and_refreshes_over_http() {
    let (address, parts) = start().await;
    let api = Caller::new(address);

    let email = "flow@cafe.example";
    let (status, signed_up) = api
        .send(Method::POST, "/member", None, Some(&sign_up_body(email)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{signed_up}");
    let member_id = text(&signed_up, "memberId").to_owned();

    let login = json!({"email": "FLOW@cafe.example", "password": PASSWORD});
    let (status, logged_in) = api
        .send(Method::POST, "/auth/login", None, Some(&login))
        .await;
    assert_eq!(status, StatusCode::OK, "{logged_in}");
    assert_eq!(text(&logged_in, "memberId"), member_id);
    let access = text(&logged_in, "accessToken").to_owned();
    let refresh = text(&logged_in, "refreshToken").to_owned();

    let me = format!("/member/{member_id}");
    let (status, profile) = api.send(Method::GET, &me, Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["result"]["email"], email);
    assert_eq!(profile["result"]["status"], "SERVICE");

    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("{me}/withdraw"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], "WITHDRAWN");
    let (status, body) = api
        .send(Method::POST, &format!("{me}/restore"), Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], "SERVICE");

    // The withdrawal ended the session: its refresh token is refused; a new log-in starts one.
    let (status, body) = api
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, logged_in) = api
        .send(Method::POST, "/auth/login", None, Some(&login))
        .await;
    assert_eq!(status, StatusCode::OK, "{logged_in}");
    let refresh = text(&logged_in, "refreshToken").to_owned();
    let (status, rotated) = api
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(text(&rotated, "refreshToken"), refresh);
    let (status, profile) = api
        .send(Method::GET, &me, Some(text(&rotated, "accessToken")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let history: Vec<&str> = profile["result"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["SERVICE", "WITHDRAWN", "SERVICE"]);

    // The used refresh token presented again at once (a second tab) gets the very same pair;
    // after the 10 s grace it would revoke the family (tests/auth_contract.rs moves the clock).
    let (status, body) = api
        .send(
            Method::POST,
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &rotated));

    let stored = parts
        .store
        .get_member(&member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(stored.status, MemberStatus::Service);
    assert_eq!(
        parts.events.types(),
        vec![
            EventType::MemberRegistered,
            EventType::MemberWithdrawn,
            EventType::MemberRestored
        ]
    );
}

#[tokio::test]
async fn items_and_query_strings_pass_through() {
    let (address, _) = start().await;
    let api = Caller::new(address);
    let (status, body) = api.send(Method::GET, "/items?unused=1", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["items"].as_array().map(Vec::len), Some(2));
    let (status, body) = api
        .send(
            Method::GET,
            "/items/01JC0FFEE00000000000000B02/",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["name"], "Book");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_contract_format() {
    let (address, _) = start().await;
    let api = Caller::new(address);
    // `/` is the customer screen (local/src/site.rs); a file the site does not have is not.
    for path in ["/nope.html", "/nope", "/member/a/b/c", "/items/x/y"] {
        let (status, body) = api.send(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["status"], "fail");
        assert_eq!(body["error"]["code"], "404CO000");
    }
    for (method, path) in [
        (Method::PUT, "/member"),
        (Method::GET, "/auth/login"),
        (Method::POST, "/items"),
    ] {
        let (status, body) = api.send(method, path, None, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(body["error"]["code"], "405CO000");
    }
}

#[tokio::test]
async fn bodies_over_64_kib_answer_413() {
    let (address, parts) = start().await;
    let api = Caller::new(address);
    let mut body = sign_up_body("big@cafe.example");
    body["name"] = json!("a".repeat(64 * 1024));
    let (status, answer) = api.send(Method::POST, "/member", None, Some(&body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "413CO000");
    assert!(parts.events.events().is_empty());
}

/// A chunked body declares no length: the cap must hold while it streams in.
#[tokio::test]
async fn a_chunked_body_over_64_kib_answers_413() {
    let (address, _) = start().await;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = "POST /member HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..5 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("size");
        stream.write_all(&chunk).await.expect("chunk");
        stream.write_all(b"\r\n").await.expect("crlf");
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    );
    let _ = read
        .await
        .expect("the server answers without waiting for the rest");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("413CO000"), "{answer}");
}

const COLA: &str = "01JC0FFEE00000000000000C01";
const BOOK: &str = "01JC0FFEE00000000000000B02";

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// An order's whole life over HTTP, with every contract error of the order and payment endpoints
/// on the way; stock and the gateway's ledger checked at the end.
#[tokio::test]
async fn orders_and_payments_over_http_answer_every_contract_error() {
    let mut config = cafe::testing::test_config();
    config.lock.max_wait = std::time::Duration::from_millis(100);
    let (address, parts) = start_with(config).await;
    let api = Caller::new(address);
    let mut tokens = Vec::new();
    for email in ["orders-a@cafe.example", "orders-b@cafe.example"] {
        let (status, body) = api
            .send(Method::POST, "/member", None, Some(&sign_up_body(email)))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        tokens.push(text(&body, "accessToken").to_owned());
    }
    let (a, b) = (tokens[0].as_str(), tokens[1].as_str());
    let two_colas_and_a_book = json!({"items": [
        {"itemId": COLA, "quantity": 2}, {"itemId": BOOK, "quantity": 1}]});

    // POST /order
    let refusals = [
        (
            None,
            json!({"items": [{"itemId": COLA, "quantity": 1}]}),
            401,
            "401CO000",
        ),
        (Some(a), json!({"items": []}), 400, "400CO000"),
        (
            Some(a),
            json!({"items": [{"itemId": COLA, "quantity": 0}]}),
            400,
            "400CO000",
        ),
        (
            Some(a),
            json!({"items": [{"itemId": COLA, "quantity": 101}]}),
            400,
            "400CO000",
        ),
        (
            Some(a),
            json!({"items": [{"itemId": COLA, "quantity": 1}, {"itemId": COLA, "quantity": 1}]}),
            400,
            "400CO000",
        ),
        (
            Some(a),
            json!({"items": [{"itemId": "01JC0FFEE00000000000000X99", "quantity": 1}]}),
            404,
            "404CO000",
        ),
        (
            Some(a),
            json!({"items": [{"itemId": COLA, "quantity": 11}]}),
            400,
            "400OR000",
        ),
    ];
    for (token, body, status, expected) in refusals {
        let (got, answer) = api.send(Method::POST, "/order", token, Some(&body)).await;
        assert_eq!((got.as_u16(), code(&answer)), (status, expected), "{body}");
    }
    let (status, order) = api
        .send(Method::POST, "/order", Some(a), Some(&two_colas_and_a_book))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["result"]["totalPrice"], 28_000);
    assert_eq!(order["result"]["status"], "PENDING_PAYMENT");
    let order_id = text(&order, "orderId").to_owned();

    // GET /order/{id} and GET /orders
    let path = format!("/order/{order_id}");
    let (status, _) = api.send(Method::GET, &path, Some(b), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api
        .send(
            Method::GET,
            "/order/01JC0FFEE0000000000000NONE",
            Some(a),
            None,
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (404, "404CO000"));
    for query in ["limit=0", "limit=101", "limit=x", "cursor=not-a-cursor"] {
        let (status, body) = api
            .send(Method::GET, &format!("/orders?{query}"), Some(a), None)
            .await;
        assert_eq!((status.as_u16(), code(&body)), (400, "400CO000"), "{query}");
    }
    let (status, listed) = api
        .send(Method::GET, "/orders?limit=5", Some(b), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed["result"]["orders"],
        json!([]),
        "b sees none of a's orders"
    );

    // POST /payment
    let pay = |amounts: &[i64]| {
        json!({"orderId": order_id, "payments": amounts.iter().map(|amount|
            json!({"amount": amount, "type": "CARD"})).collect::<Vec<_>>()})
    };
    let (status, body) = api
        .send(Method::POST, "/payment", Some(a), Some(&pay(&[27_999])))
        .await;
    assert_eq!((status.as_u16(), code(&body)), (400, "400PA000"));
    let (status, body) = api
        .send(Method::POST, "/payment", Some(b), Some(&pay(&[28_000])))
        .await;
    assert_eq!((status.as_u16(), code(&body)), (403, "403CO000"));
    let (status, body) = api
        .send(Method::POST, "/payment", Some(a), Some(&pay(&[0, 28_000])))
        .await;
    assert_eq!((status.as_u16(), code(&body)), (400, "400CO000"));

    // The gateway fails: 502PA000 and nothing changes.
    let failing = cafe::config::GatewayConfig {
        failure_rate: 1.0,
        ..Default::default()
    };
    parts.gateway.set_config(failing);
    let (status, body) = api
        .send(Method::POST, "/payment", Some(a), Some(&pay(&[28_000])))
        .await;
    assert_eq!((status.as_u16(), code(&body)), (502, "502PA000"));
    parts
        .gateway
        .set_config(cafe::config::GatewayConfig::default());

    // Someone else holds the order's lock: 409PA001 with Retry-After.
    let held = parts
        .lock
        .acquire(&[cafe::lock::order_key(&order_id)])
        .await
        .expect("lock");
    let (status, body) = api
        .send(Method::POST, "/payment", Some(a), Some(&pay(&[28_000])))
        .await;
    assert_eq!((status.as_u16(), code(&body)), (409, "409PA001"));
    parts.lock.release(&held).await.expect("release");

    let key = [("Idempotency-Key", "http-pay-1")];
    let split = pay(&[20_000, 8_000]);
    let (status, paid) = api
        .send_with(Method::POST, "/payment", Some(a), Some(&split), &key)
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["result"]["status"], "COMPLETED");
    let (status, replay) = api
        .send_with(Method::POST, "/payment", Some(a), Some(&split), &key)
        .await;
    assert_eq!(
        (status, &replay),
        (StatusCode::OK, &paid),
        "same key, same body: same answer"
    );
    let (status, body) = api
        .send_with(
            Method::POST,
            "/payment",
            Some(a),
            Some(&pay(&[28_000])),
            &key,
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (409, "409PA002"));
    let (status, body) = api
        .send(Method::POST, "/payment", Some(a), Some(&split))
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (400, "400OR001"),
        "paid already"
    );

    let stock = |items: &Value, id: &str| {
        items["result"]["items"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["itemId"] == id))
            .map(|i| i["stock"].clone())
    };
    let (_, items) = api.send(Method::GET, "/items", None, None).await;
    assert_eq!(
        (stock(&items, COLA), stock(&items, BOOK)),
        (Some(json!(8)), Some(json!(14)))
    );

    // DELETE /order/{id}/cancel
    let cancel = format!("/order/{order_id}/cancel");
    let (status, body) = api.send(Method::DELETE, &cancel, Some(b), None).await;
    assert_eq!((status.as_u16(), code(&body)), (403, "403CO000"));
    let (status, body) = api.send(Method::DELETE, &cancel, Some(a), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.send(Method::DELETE, &cancel, Some(a), None).await;
    assert_eq!((status.as_u16(), code(&body)), (400, "400OR001"));
    let (_, items) = api.send(Method::GET, "/items", None, None).await;
    assert_eq!(
        (stock(&items, COLA), stock(&items, BOOK)),
        (Some(json!(10)), Some(json!(15)))
    );

    let (_, order) = api.send(Method::GET, &path, Some(a), None).await;
    assert_eq!(order["result"]["status"], "CANCELLED");
    let statuses: Vec<&str> = order["result"]["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .filter_map(|p| p["status"].as_str())
        .collect();
    assert_eq!(statuses, ["CANCELED", "CANCELED"]);
    let ledger = parts.gateway.ledger();
    assert_eq!(
        (ledger.charges.len(), ledger.refunds.len()),
        (2, 2),
        "charged once, refunded once"
    );
}
