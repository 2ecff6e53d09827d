//! The live WebSocket API's Lambda functions in-process, fed the samples in `events/` (as API
//! Gateway and the EventBridge rule send them), on the embedded default: `$connect` redeems a
//! ticket once, `subscribe`/`$default` answer on the socket, `$disconnect` forgets, and the
//! sender forgets a connection API Gateway says is gone (a stub management endpoint answering
//! 410) while the others are still posted to.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use cafe::clock::Clock;
use cafe::domain::Role;
use cafe::services::live::{Posted, Poster};
use cafe_local::testing::{TestApp, request};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn sample(function: &str) -> Value {
    let path = format!("{}/../events/{function}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("JSON")
}

/// The sample of `function` for `connection`, with `edit` applied.
fn ws_event(
    function: &str,
    connection: &str,
    edit: impl FnOnce(&mut Value),
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = sample(function);
    event["requestContext"]["connectionId"] = json!(connection);
    edit(&mut event);
    serde_json::from_value(event).expect("a WebSocket event")
}

fn connect(connection: &str, ticket: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    ws_event("live-connect", connection, |e| match ticket {
        Some(ticket) => {
            e["queryStringParameters"] = json!({"ticket": ticket});
            e["multiValueQueryStringParameters"] = json!({"ticket": [ticket]});
        }
        None => {
            e.as_object_mut().map(|o| o.remove("queryStringParameters"));
            e.as_object_mut()
                .map(|o| o.remove("multiValueQueryStringParameters"));
        }
    })
}

fn frame(connection: &str, body: Value) -> ApiGatewayWebsocketProxyRequest {
    ws_event("live-subscribe", connection, |e| {
        e["body"] = json!(body.to_string());
    })
}

async fn ticket(t: &TestApp, access: &str) -> String {
    let (status, body) = t
        .call(request("POST", "/live/ticket").bearer(access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"]["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned()
}

fn reply(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().expect("a body")).expect("a JSON frame")
}

#[tokio::test]
async fn the_samples_get_their_answers() {
    let t = TestApp::new().await;
    // The sample's ticket was never issued: refused with the contract's 401.
    let refused = live_connect::handle(
        serde_json::from_value(sample("live-connect")).expect("sample"),
        &t.app,
    )
    .await;
    assert_eq!(refused["statusCode"], 401, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["error"]["code"], "401CO000");
    // Its connection never opened, so its subscribe is refused too.
    let answer = live_subscribe::handle(
        serde_json::from_value(sample("live-subscribe")).expect("sample"),
        &t.app,
    )
    .await;
    assert_eq!(reply(&answer)["code"], "401CO000", "{answer}");
    let gone = live_disconnect::handle(
        serde_json::from_value(sample("live-disconnect")).expect("sample"),
        &t.app,
    )
    .await;
    assert_eq!(gone["statusCode"], 200);
    // The sender's sample names an order this store does not have: nothing to post, no retry.
    let posted = Arc::new(Recording::default());
    let response = live_sender::handle(
        serde_json::from_value(sample("live-sender")).expect("an EventBridge event"),
        &t.app,
        posted.clone(),
    )
    .await;
    assert_eq!(response, Ok(cafe::services::live::FanOut::default()));
    assert!(posted.calls().is_empty());
    // An event of another source (a rule widened by mistake) is no domain event: nothing done.
    let mut foreign = sample("live-sender");
    foreign["source"] = json!("aws.events");
    foreign["detail-type"] = json!("Scheduled Event");
    let response = live_sender::handle(
        serde_json::from_value(foreign).expect("an EventBridge event"),
        &t.app,
        posted.clone(),
    )
    .await;
    assert_eq!(response, Ok(cafe::services::live::FanOut::default()));
    assert!(posted.calls().is_empty());
}

#[tokio::test]
async fn connect_redeems_a_ticket_once_and_subscribe_checks_ownership() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let other = t.sign_up().await;
    let good = ticket(&t, &me.access).await;
    let opened = live_connect::handle(connect("c-me", Some(&good)), &t.app).await;
    assert_eq!(opened, json!({"statusCode": 200}));
    let again = live_connect::handle(connect("c-again", Some(&good)), &t.app).await;
    assert_eq!(again["statusCode"], 401, "a used ticket: {again}");
    let late = ticket(&t, &me.access).await;
    t.clock.advance(chrono::Duration::seconds(31));
    let expired = live_connect::handle(connect("c-late", Some(&late)), &t.app).await;
    assert_eq!(expired["statusCode"], 401, "an expired ticket: {expired}");
    let anonymous = live_connect::handle(connect("c-anon", None), &t.app).await;
    assert_eq!(anonymous["statusCode"], 200);

    let (status, order) = t
        .call(
            request("POST", "/order")
                .bearer(&other.access)
                .json(&json!({"items": [{"itemId": "01JC0FFEE00000000000000C01", "quantity": 1}]}))
                .build(),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let theirs = order["result"]["orderId"].as_str().expect("orderId");
    let answer = live_subscribe::handle(
        frame(
            "c-me",
            json!({"action": "subscribe", "topic": "order", "orderId": theirs}),
        ),
        &t.app,
    )
    .await;
    assert_eq!(reply(&answer)["code"], "403CO000", "{answer}");
    let answer = live_subscribe::handle(
        frame("c-anon", json!({"action": "subscribe", "topic": "orders"})),
        &t.app,
    )
    .await;
    assert_eq!(reply(&answer)["code"], "401CO000", "{answer}");
    let answer = live_subscribe::handle(frame("c-me", json!({"action": "ping"})), &t.app).await;
    assert_eq!(reply(&answer), json!({"type": "pong"}));
    let answer = live_subscribe::handle(
        frame("c-me", json!({"action": "subscribe", "topic": "orders"})),
        &t.app,
    )
    .await;
    assert_eq!(reply(&answer)["type"], "subscribed", "{answer}");
    let listeners = t
        .app
        .store
        .live_listeners(&format!("MEMBER#{}", me.member_id), t.clock.now())
        .await
        .expect("listeners");
    assert_eq!(listeners, ["c-me"]);
    live_disconnect::handle(ws_event("live-disconnect", "c-me", |_| {}), &t.app).await;
    let listeners = t
        .app
        .store
        .live_listeners(&format!("MEMBER#{}", me.member_id), t.clock.now())
        .await
        .expect("listeners");
    assert!(listeners.is_empty(), "{listeners:?}");
}

/// Delivers to everyone but `gone`, which it answers 410.
#[derive(Default)]
struct Recording {
    gone: Vec<String>,
    calls: Mutex<Vec<(String, String)>>,
}

impl Recording {
    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl Poster for Recording {
    async fn post(&self, connection_id: &str, message: &str) -> Posted {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((connection_id.to_owned(), message.to_owned()));
        if self.gone.iter().any(|g| g == connection_id) {
            Posted::Gone
        } else {
            Posted::Delivered
        }
    }
}

/// A new member's order paid in `parts`, with a staff connection on `orders` for each of
/// `connections`: the order id and the events committed.
async fn paid_order_with_listeners(
    t: &TestApp,
    connections: &[&str],
    parts: i64,
) -> (String, Vec<cafe::domain::DomainEvent>) {
    let staff = cafe_local::testing::staff(&t.app, Role::Staff).await;
    for connection in connections {
        let issued = ticket(t, &staff.access).await;
        let opened = live_connect::handle(connect(connection, Some(&issued)), &t.app).await;
        assert_eq!(opened["statusCode"], 200);
        let answer = live_subscribe::handle(
            frame(
                connection,
                json!({"action": "subscribe", "topic": "orders"}),
            ),
            &t.app,
        )
        .await;
        assert_eq!(reply(&answer)["type"], "subscribed");
    }
    let customer = t.sign_up().await;
    t.parts.events.take();
    let (_, order) = t
        .call(
            request("POST", "/order")
                .bearer(&customer.access)
                .json(&json!({"items": [{"itemId": "01JC0FFEE00000000000000C01", "quantity": 1}]}))
                .build(),
        )
        .await;
    let order_id = order["result"]["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned();
    let total = order["result"]["totalPrice"].as_i64().expect("total");
    let (status, paid) = t
        .call(
            request("POST", "/payment")
                .bearer(&customer.access)
                .json(&json!({"orderId": order_id, "payments": split(total, parts)}))
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    (order_id, t.parts.events.take())
}

/// `total` in `parts` card payments.
fn split(total: i64, parts: i64) -> Value {
    let each = total / parts;
    let amounts: Vec<i64> = (0..parts)
        .map(|i| {
            if i == 0 {
                total - each * (parts - 1)
            } else {
                each
            }
        })
        .collect();
    json!(
        amounts
            .iter()
            .map(|amount| json!({"amount": amount, "type": "CARD"}))
            .collect::<Vec<_>>()
    )
}

/// Each committed event as the EventBridge rule brings it (what `events-publisher` put on the
/// bus), one invocation each, in commit order: what the sender did in all.
async fn send_through_the_bus(
    events: &[cafe::domain::DomainEvent],
    app: &cafe::App,
    poster: Arc<dyn Poster>,
) -> cafe::services::live::FanOut {
    let mut total = cafe::services::live::FanOut::default();
    for event in events {
        let done = live_sender::handle(
            cafe::events::eventbridge::BusEvent::of(event),
            app,
            poster.clone(),
        )
        .await
        .expect("the table was read");
        total.delivered += done.delivered;
        total.gone += done.gone;
        total.failed += done.failed;
    }
    total
}

#[tokio::test]
async fn a_gone_connection_is_forgotten_and_the_others_still_get_theirs() {
    let t = TestApp::new().await;
    let (order_id, events) = paid_order_with_listeners(&t, &["c-gone", "c-stays"], 1).await;
    let poster = Arc::new(Recording {
        gone: vec!["c-gone".into()],
        ..Recording::default()
    });
    let done = send_through_the_bus(&events, &t.app, poster.clone()).await;
    assert_eq!((done.delivered, done.gone, done.failed), (1, 1, 0));
    let calls = poster.calls();
    let mut posted_to: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    posted_to.sort_unstable();
    assert_eq!(posted_to, ["c-gone", "c-stays"]);
    let message: Value = serde_json::from_str(&calls[0].1).expect("json");
    assert_eq!(message["orderId"], order_id);
    assert_eq!(message["status"], "COMPLETED");
    let listeners = t
        .app
        .store
        .live_listeners("STAFF", t.clock.now())
        .await
        .expect("listeners");
    assert_eq!(listeners, ["c-stays"]);
}

#[tokio::test]
async fn a_410_from_the_management_api_cleans_the_connection_up() {
    let t = TestApp::new().await;
    let (_, events) = paid_order_with_listeners(&t, &["c-closed"], 1).await;
    let (endpoint, requests) = cafe_local::testing::gone_management_endpoint().await;
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .endpoint_url(&endpoint)
        .region(Region::new("ap-northeast-2"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .behavior_version(BehaviorVersion::latest())
        .build();
    let api =
        live_sender::ManagementApi::new(aws_sdk_apigatewaymanagement::Client::from_conf(config));
    let done = send_through_the_bus(&events, &t.app, Arc::new(api)).await;
    assert_eq!(done.gone, 1);
    assert_eq!(
        requests.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        [("POST".to_owned(), "/live/@connections/c-closed".to_owned())]
    );
    let listeners = t
        .app
        .store
        .live_listeners("STAFF", t.clock.now())
        .await
        .expect("listeners");
    assert!(listeners.is_empty(), "{listeners:?}");
    assert_eq!(
        t.app
            .store
            .get_live_connection("c-closed", t.clock.now())
            .await
            .expect("read"),
        None
    );
}

/// A payment in three parts commits three `PaymentCompleted` events, and behind EventBridge each
/// is an invocation of its own: the listeners still hear the order's `COMPLETED` once.
#[tokio::test]
async fn a_split_payment_is_heard_once_though_each_part_is_its_own_invocation() {
    let t = TestApp::new().await;
    let (order_id, events) = paid_order_with_listeners(&t, &["c-desk", "c-bar"], 3).await;
    let completed = events
        .iter()
        .filter(|e| e.event_type == cafe::domain::EventType::PaymentCompleted)
        .count();
    assert_eq!(completed, 3, "one event per part");
    let poster = Arc::new(Recording::default());
    let done = send_through_the_bus(&events, &t.app, poster.clone()).await;
    assert_eq!((done.delivered, done.gone, done.failed), (2, 0, 0));
    let mut heard: Vec<(String, String)> = poster
        .calls()
        .into_iter()
        .map(|(connection, message)| {
            let message: Value = serde_json::from_str(&message).expect("json");
            assert_eq!(message["orderId"], order_id);
            (
                connection,
                message["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    heard.sort();
    assert_eq!(
        heard,
        [
            ("c-bar".to_owned(), "COMPLETED".to_owned()),
            ("c-desk".to_owned(), "COMPLETED".to_owned())
        ]
    );
}

/// The local server fans a commit's events out as one batch: the parts of a split payment, in
/// whatever order they come, still make one `COMPLETED` per listener.
#[tokio::test]
async fn a_split_payment_in_one_batch_in_any_order_is_heard_once() {
    let t = TestApp::new().await;
    let (_, mut events) = paid_order_with_listeners(&t, &["c-desk"], 3).await;
    events.reverse();
    let poster = Arc::new(Recording::default());
    let done = live_sender::fan_out(&t.app, poster.clone(), &events)
        .await
        .expect("the table was read");
    assert_eq!((done.delivered, done.gone, done.failed), (1, 0, 0));
    let calls = poster.calls();
    let message: Value = serde_json::from_str(&calls[0].1).expect("json");
    assert_eq!(message["status"], "COMPLETED");
}
