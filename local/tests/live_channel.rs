//! The live channel (`docs/live.md`) through a real WebSocket client against the local server:
//! who hears what, in which order and how soon; which tickets open a connection; what the
//! display may see. The calls that change orders go through the same server's HTTP routes.

use cafe::App;
use cafe::clock::Clock;
use cafe::domain::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

const COLA: &str = "01JC0FFEE00000000000000C01";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    app: Arc<App>,
    clock: Arc<cafe::clock::ManualClock>,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let clock = cafe::testing::manual_clock();
        let (app, _parts) = App::in_memory(cafe::testing::test_config(), clock.clone())
            .await
            .expect("in-memory app");
        Self::serve(app, clock).await
    }

    /// The local server over the AWS backend: DynamoDB on moto (`CAFE_TEST_DYNAMODB_ENDPOINT`,
    /// a fresh table), whose outbox rows the live channel polls as the stream would bring them.
    async fn on_dynamodb() -> Self {
        use cafe::store::ItemStore;
        let endpoint = cafe::testing::dynamodb_endpoint();
        let store = cafe::store::dynamo::testing::fresh_store(&endpoint).await;
        for item in cafe::domain::item::seed_items() {
            store.put_item(&item).await.expect("seed");
        }
        let mut config = cafe::testing::test_config();
        config.backend = cafe::config::Backend::Aws;
        config.table_name = store.table_name().to_owned();
        config.dynamodb_endpoint = Some(endpoint);
        let clock = cafe::testing::manual_clock();
        let lock = Arc::new(cafe::lock::LocalLock::new(config.lock));
        let app = App::with_store(config, clock.clone(), Arc::new(store), lock).expect("app");
        Self::serve(app, clock).await
    }

    async fn serve(app: App, clock: Arc<cafe::clock::ManualClock>) -> Self {
        let app = Arc::new(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(cafe_local::serve(listener, app.clone()));
        Self {
            app,
            clock,
            addr,
            http: reqwest::Client::new(),
        }
    }

    /// An HTTP call to the server: `(status, body)`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("HTTP call");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, Some(token), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer["result"].clone()
    }

    async fn ticket(&self, token: &str) -> String {
        let answer = self.ok("POST", "/live/ticket", token, None).await;
        assert_eq!(
            answer["url"],
            format!("ws://{}/live", self.addr),
            "{answer}"
        );
        assert!(answer["expiresAt"].is_string(), "{answer}");
        answer["ticket"].as_str().expect("ticket").to_owned()
    }

    async fn connect(&self, ticket: Option<&str>) -> Socket {
        self.try_connect(ticket).await.expect("connected")
    }

    /// The upgrade's refusal status, or the socket.
    async fn try_connect(&self, ticket: Option<&str>) -> Result<Socket, u16> {
        let url = match ticket {
            Some(ticket) => format!("ws://{}/live?ticket={ticket}", self.addr),
            None => format!("ws://{}/live", self.addr),
        };
        match connect_async(url).await {
            Ok((socket, response)) => {
                assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
                Ok(socket)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("connect failed: {other}"),
        }
    }

    /// A paid order of `customer`: its id.
    async fn paid_order(&self, token: &str) -> String {
        let order = self.pending_order(token).await;
        self.pay(token, &order).await;
        order
    }

    async fn pending_order(&self, token: &str) -> String {
        let order = self
            .ok(
                "POST",
                "/order",
                token,
                Some(json!({"items": [{"itemId": COLA, "quantity": 1}]})),
            )
            .await;
        order["orderId"].as_str().expect("orderId").to_owned()
    }

    async fn pay(&self, token: &str, order_id: &str) {
        let order = self
            .ok("GET", &format!("/order/{order_id}"), token, None)
            .await;
        let total = order["totalPrice"].as_i64().expect("totalPrice");
        self.ok(
            "POST",
            "/payment",
            token,
            Some(json!({"orderId": order_id, "payments": [{"amount": total, "type": "CARD"}]})),
        )
        .await;
    }

    async fn advance(&self, staff: &str, order_id: &str, status: &str) {
        self.ok(
            "PUT",
            &format!("/admin/orders/{order_id}/status"),
            staff,
            Some(json!({"status": status})),
        )
        .await;
    }
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send");
}

/// The next text frame as JSON, within `within`.
async fn next(socket: &mut Socket, within: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

async fn expect(socket: &mut Socket) -> Value {
    next(socket, Duration::from_secs(1))
        .await
        .expect("a frame within 1 s")
}

async fn subscribe(socket: &mut Socket, frame: Value) -> Value {
    send(socket, frame).await;
    expect(socket).await
}

async fn nothing_within(socket: &mut Socket, wait: Duration) {
    if let Some(frame) = next(socket, wait).await {
        panic!("expected nothing, got {frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_their_order_move_in_order_within_a_second_and_nothing_of_others() {
    let s = Server::start().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;
    let other = cafe_local::testing::sign_up(&s.app).await;
    let staff = cafe_local::testing::staff(&s.app, Role::Staff).await;

    let order = s.pending_order(&customer.access).await;
    let mut mine = s.connect(Some(&s.ticket(&customer.access).await)).await;
    let answer = subscribe(
        &mut mine,
        json!({"action": "subscribe", "topic": "order", "orderId": order}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"type": "subscribed", "topic": "order", "heartbeatSeconds": 300})
    );
    let mut theirs = s.connect(Some(&s.ticket(&other.access).await)).await;
    let answer = subscribe(
        &mut theirs,
        json!({"action": "subscribe", "topic": "orders"}),
    )
    .await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    // The other member may not name this order: refused, and nothing of it arrives.
    let refused = subscribe(
        &mut theirs,
        json!({"action": "subscribe", "topic": "order", "orderId": order}),
    )
    .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "403CO000", "{refused}");

    let started = Instant::now();
    s.pay(&customer.access, &order).await;
    let mut seen = Vec::new();
    // The order's creation may still be on its way (it committed just before the subscription).
    let mut paid = expect(&mut mine).await;
    if paid["status"] == "PENDING_PAYMENT" {
        paid = expect(&mut mine).await;
    }
    seen.push(paid);
    for status in ["PREPARING", "READY", "PICKED_UP"] {
        let called = Instant::now();
        s.advance(&staff.access, &order, status).await;
        let frame = expect(&mut mine).await;
        assert!(
            called.elapsed() < Duration::from_secs(1),
            "{status} took {:?}",
            called.elapsed()
        );
        seen.push(frame);
    }
    let statuses: Vec<&str> = seen
        .iter()
        .map(|f| f["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(statuses, ["COMPLETED", "PREPARING", "READY", "PICKED_UP"]);
    let versions: Vec<i64> = seen
        .iter()
        .map(|f| f["version"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    for frame in &seen {
        assert_eq!(frame["type"], "order");
        assert_eq!(frame["orderId"], order);
        assert!(
            frame["pickupNumber"].is_u64() || frame["pickupNumber"].is_null(),
            "{frame}"
        );
        assert!(frame["at"].is_string(), "{frame}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    nothing_within(&mut theirs, Duration::from_millis(300)).await;

    // Heartbeat.
    assert_eq!(
        subscribe(&mut mine, json!({"action": "ping"})).await,
        json!({"type": "pong"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_hear_a_new_paid_order_and_customers_their_own_orders_only() {
    let s = Server::start().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;
    let other = cafe_local::testing::sign_up(&s.app).await;
    let staff = cafe_local::testing::staff(&s.app, Role::Staff).await;
    let mut desk = s.connect(Some(&s.ticket(&staff.access).await)).await;
    assert_eq!(
        subscribe(&mut desk, json!({"action": "subscribe", "topic": "orders"})).await["type"],
        "subscribed"
    );
    let mut mine = s.connect(Some(&s.ticket(&customer.access).await)).await;
    assert_eq!(
        subscribe(&mut mine, json!({"action": "subscribe", "topic": "orders"})).await["type"],
        "subscribed"
    );
    let theirs_order = s.paid_order(&other.access).await;
    let heard = expect(&mut desk).await;
    assert_eq!(heard["orderId"], theirs_order, "{heard}");
    assert_eq!(heard["status"], "COMPLETED", "{heard}");
    nothing_within(&mut mine, Duration::from_millis(300)).await;

    let my_order = s.pending_order(&customer.access).await;
    let created = expect(&mut mine).await;
    assert_eq!(created["orderId"], my_order);
    assert_eq!(created["status"], "PENDING_PAYMENT");
    assert_eq!(created["version"], 0);
    // Staff hear the queue: paid orders, not pending ones.
    nothing_within(&mut desk, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_display_gets_numbers_and_statuses_only_and_anonymous_gets_nothing_else() {
    let s = Server::start().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;
    let staff = cafe_local::testing::staff(&s.app, Role::Staff).await;
    let mut display = s.connect(None).await;
    for topic in [
        json!({"action": "subscribe", "topic": "orders"}),
        json!({"action": "subscribe", "topic": "order", "orderId": "01JC0FFEE00000000000000C01"}),
    ] {
        let refused = subscribe(&mut display, topic).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["code"], "401CO000", "{refused}");
    }
    assert_eq!(
        subscribe(
            &mut display,
            json!({"action": "subscribe", "topic": "display"})
        )
        .await,
        json!({"type": "subscribed", "topic": "display", "heartbeatSeconds": 300})
    );
    let order = s.paid_order(&customer.access).await;
    s.advance(&staff.access, &order, "PREPARING").await;
    s.advance(&staff.access, &order, "READY").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let frame = expect(&mut display).await;
        let mut keys: Vec<&str> = frame
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["pickupNumber", "status", "type", "version"],
            "{frame}"
        );
        assert_eq!(frame["type"], "display");
        assert!(frame["pickupNumber"].is_u64(), "{frame}");
        let text = frame.to_string();
        for secret in [
            order.as_str(),
            customer.member_id.as_str(),
            customer.email.as_str(),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        statuses.push(frame["status"].as_str().unwrap_or("?").to_owned());
    }
    assert_eq!(statuses, ["COMPLETED", "PREPARING", "READY"]);
    // Malformed frames are answered, not fatal.
    let bad = subscribe(
        &mut display,
        json!({"action": "subscribe", "topic": "everything"}),
    )
    .await;
    assert_eq!(bad["code"], "400CO000", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reused_and_forged_tickets_are_refused() {
    let s = Server::start().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;

    // No token, a bad token: no ticket.
    let (status, body) = s.call("POST", "/live/ticket", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "401CO000");
    let (status, _) = s
        .call("POST", "/live/ticket", Some("not-a-token"), None)
        .await;
    assert_eq!(status, 401);

    // Reused: the first connection gets in, the second is refused.
    let ticket = s.ticket(&customer.access).await;
    let _first = s.connect(Some(&ticket)).await;
    assert_eq!(s.try_connect(Some(&ticket)).await.err(), Some(401));

    // Expired: 30 s.
    let ticket = s.ticket(&customer.access).await;
    s.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(s.try_connect(Some(&ticket)).await.err(), Some(401));

    // Forged: well formed but never issued, and not even well formed.
    let forged = "A".repeat(43);
    assert_eq!(s.try_connect(Some(&forged)).await.err(), Some(401));
    assert_eq!(s.try_connect(Some("forged")).await.err(), Some(401));

    // A good one still works after all that.
    let ticket = s.ticket(&customer.access).await;
    let mut socket = s.connect(Some(&ticket)).await;
    assert_eq!(
        subscribe(&mut socket, json!({"action": "ping"})).await["type"],
        "pong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_is_forgotten_and_the_others_still_hear() {
    let s = Server::start().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;
    let staff = cafe_local::testing::staff(&s.app, Role::Staff).await;
    let mut gone = s.connect(Some(&s.ticket(&staff.access).await)).await;
    subscribe(&mut gone, json!({"action": "subscribe", "topic": "orders"})).await;
    let mut stays = s.connect(Some(&s.ticket(&staff.access).await)).await;
    subscribe(
        &mut stays,
        json!({"action": "subscribe", "topic": "orders"}),
    )
    .await;
    let listeners = |s: &Server| {
        let app = s.app.clone();
        let now = s.clock.now();
        async move {
            app.store
                .live_listeners("STAFF", now)
                .await
                .expect("listeners")
                .len()
        }
    };
    assert_eq!(listeners(&s).await, 2);
    gone.close(None).await.expect("close");
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(2);
    while listeners(&s).await != 1 {
        assert!(
            Instant::now() < deadline,
            "the closed socket was not forgotten"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = s.paid_order(&customer.access).await;
    assert_eq!(expect(&mut stays).await["orderId"], order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_aws_backend_the_customer_sees_their_order_move_in_order() {
    let s = Server::on_dynamodb().await;
    let customer = cafe_local::testing::sign_up(&s.app).await;
    let other = cafe_local::testing::sign_up(&s.app).await;
    let staff = cafe_local::testing::staff(&s.app, Role::Staff).await;
    let order = s.pending_order(&customer.access).await;
    let mut mine = s.connect(Some(&s.ticket(&customer.access).await)).await;
    let answer = subscribe(
        &mut mine,
        json!({"action": "subscribe", "topic": "order", "orderId": order}),
    )
    .await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    let mut theirs = s.connect(Some(&s.ticket(&other.access).await)).await;
    let refused = subscribe(
        &mut theirs,
        json!({"action": "subscribe", "topic": "order", "orderId": order}),
    )
    .await;
    assert_eq!(refused["code"], "403CO000", "{refused}");
    let ticket = s.ticket(&customer.access).await;
    let _used = s.connect(Some(&ticket)).await;
    assert_eq!(s.try_connect(Some(&ticket)).await.err(), Some(401));

    s.pay(&customer.access, &order).await;
    let mut statuses = Vec::new();
    let mut frame = expect(&mut mine).await;
    if frame["status"] == "PENDING_PAYMENT" {
        frame = expect(&mut mine).await;
    }
    statuses.push(frame["status"].as_str().unwrap_or("?").to_owned());
    for status in ["PREPARING", "READY", "PICKED_UP"] {
        let called = Instant::now();
        s.advance(&staff.access, &order, status).await;
        let frame = expect(&mut mine).await;
        assert!(
            called.elapsed() < Duration::from_secs(1),
            "{status} took {:?}",
            called.elapsed()
        );
        statuses.push(frame["status"].as_str().unwrap_or("?").to_owned());
    }
    assert_eq!(statuses, ["COMPLETED", "PREPARING", "READY", "PICKED_UP"]);
    nothing_within(&mut theirs, Duration::from_millis(300)).await;
}
