//! `POST /payment` over the HTTP edge: the order of checks, the envelope and idempotent replays,
//! starting from the sample event in `events/`.

use cafe::App;
use cafe::domain::Member;
use cafe::services::orders::{self, CreateOrderRequest, LineRequest};
use lambda_http::{Body, Request};
use serde_json::{Value, json};

mod support;
use support::member;

const SAMPLE: &str = include_str!("../../../events/payment-create.json");

async fn app() -> App {
    App::in_memory(cafe::testing::test_config(), cafe::testing::manual_clock())
        .await
        .expect("app")
        .0
}

/// The sample event with this token, body and key.
fn request(token: Option<&str>, body: &str, key: Option<&str>) -> Request {
    let mut event: Value = serde_json::from_str(SAMPLE).expect("sample is JSON");
    let headers = event["headers"].as_object_mut().expect("headers");
    match token {
        Some(token) => headers.insert("authorization".into(), json!(format!("Bearer {token}"))),
        None => headers.remove("authorization"),
    };
    match key {
        Some(key) => headers.insert("idempotency-key".into(), json!(key)),
        None => headers.remove("idempotency-key"),
    };
    event["body"] = json!(body);
    lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
}

async fn call(app: &App, req: Request) -> (u16, Value, String) {
    let response = payment_create::handle(req, app).await;
    let text = match response.body() {
        Body::Text(text) => text.clone(),
        other => panic!("unexpected body {other:?}"),
    };
    let json = serde_json::from_str(&text).expect("JSON body");
    (response.status().as_u16(), json, text)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn checks_auth_then_service_then_body_then_the_order() {
    let app = app().await;
    let bad_body = "{\"orderId\":1}";
    let (status, body, _) = call(&app, request(None, bad_body, None)).await;
    assert_eq!((status, code(&body)), (401, "401CO000"));

    let (_, withdrawn_token) = member(&app, true).await;
    let (status, body, _) = call(&app, request(Some(&withdrawn_token), bad_body, None)).await;
    assert_eq!((status, code(&body)), (403, "403CO000"));

    let (_, token) = member(&app, false).await;
    let (status, body, _) = call(&app, request(Some(&token), bad_body, None)).await;
    assert_eq!((status, code(&body)), (400, "400CO000"));
    assert_eq!(
        body["error"]["detailMessage"],
        "Parameter (orderId) is missing or invalid."
    );

    let (status, body, _) = call(
        &app,
        request(
            Some(&token),
            r#"{"orderId":"x","payments":[{"amount":1,"type":"CARD"}]}"#,
            Some("has space"),
        ),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "400CO000"));
    assert!(
        body["error"]["detailMessage"]
            .as_str()
            .unwrap_or("")
            .contains("Idempotency-Key")
    );

    // The sample's order does not exist in this store.
    let sample: Value = serde_json::from_str(SAMPLE).expect("sample");
    let (status, body, _) = call(
        &app,
        request(Some(&token), sample["body"].as_str().expect("body"), None),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "404CO000"));
}

#[tokio::test]
async fn pays_once_and_replays_the_same_answer_for_the_same_key() {
    let app = app().await;
    let (member, token) = member(&app, false).await;
    let order = orders::create_order(
        &app,
        &member.member_id,
        &CreateOrderRequest {
            items: vec![LineRequest {
                item_id: "01JC0FFEE00000000000000C01".into(),
                quantity: 2,
            }],
        },
    )
    .await
    .expect("order");
    let body = json!({"orderId": order.order_id, "payments": [{"amount": 3000, "type": "CARD"}]})
        .to_string();

    let (status, first, first_text) = call(&app, request(Some(&token), &body, Some("k-1"))).await;
    assert_eq!(status, 200);
    assert_eq!(first["status"], "success");
    assert_eq!(first["result"]["status"], "COMPLETED");
    assert_eq!(first["result"]["payments"][0]["status"], "PAID");

    let (status, _, replay_text) = call(&app, request(Some(&token), &body, Some("k-1"))).await;
    assert_eq!((status, replay_text), (200, first_text));

    let (status, again, _) = call(&app, request(Some(&token), &body, None)).await;
    assert_eq!((status, code(&again)), (400, "400OR001"));
}

async fn pending_order(app: &App, member: &Member) -> String {
    orders::create_order(
        app,
        &member.member_id,
        &CreateOrderRequest {
            items: vec![LineRequest {
                item_id: "01JC0FFEE00000000000000C01".into(),
                quantity: 2,
            }],
        },
    )
    .await
    .expect("order")
    .order_id
}

#[tokio::test]
async fn every_payment_is_measured_in_emf() {
    let app = app().await;
    let measured = app.metrics.start_recording();
    let (member, token) = member(&app, false).await;
    let order_id = pending_order(&app, &member).await;
    let body = json!({"orderId": order_id, "payments": [
        {"amount": 1000, "type": "CARD"}, {"amount": 2000, "type": "POINT"}]})
    .to_string();
    let (status, _, _) = call(&app, request(Some(&token), &body, Some("m-1"))).await;
    assert_eq!(status, 200);

    let ok = [("Function", "payment-create"), ("CodeClass", "2xx")];
    assert_eq!(measured.sum("Requests", &ok), 1.0);
    let request_line = measured
        .documents()
        .into_iter()
        .find(|d| d.get("Requests").is_some())
        .expect("a request line");
    assert_eq!(
        request_line["requestId"], "Fz3kWiX5IE0EMbE=",
        "the API Gateway request id"
    );
    assert_eq!(measured.sum("PaymentsCompleted", &[]), 1.0);
    assert_eq!(measured.sum("PaymentsFailed", &[]), 0.0);
    assert_eq!(measured.count("GatewayLatency"), 2, "one per part charged");
    assert_eq!(
        measured.sum("GatewayFailures", &[("Operation", "charge")]),
        0.0
    );
    assert_eq!(measured.count("LockWait"), 1);
    assert_eq!(measured.sum("LockBusy", &[]), 0.0);

    // The order's lock held elsewhere: 409PA001 is a busy lock, not a failed payment.
    let order_id = pending_order(&app, &member).await;
    let lease = app
        .lock
        .acquire(&[cafe::lock::order_key(&order_id)])
        .await
        .expect("lock");
    let body =
        json!({"orderId": order_id, "payments": [{"amount": 3000, "type": "CARD"}]}).to_string();
    let (status, busy, _) = call(&app, request(Some(&token), &body, None)).await;
    assert_eq!((status, code(&busy)), (409, "409PA001"));
    assert_eq!(measured.sum("LockBusy", &[]), 1.0);
    assert_eq!(measured.sum("Requests", &[("CodeClass", "4xx")]), 1.0);
    assert_eq!(measured.sum("PaymentsFailed", &[]), 0.0);
    app.lock.release(&lease).await.expect("release");
}

#[tokio::test]
async fn a_declined_payment_counts_as_failed_with_a_gateway_failure() {
    let mut config = cafe::testing::test_config();
    config.gateway.failure_rate = 1.0;
    let (app, _) = App::in_memory(config, cafe::testing::manual_clock())
        .await
        .expect("app");
    let measured = app.metrics.start_recording();
    let (member, token) = member(&app, false).await;
    let order_id = pending_order(&app, &member).await;
    let body =
        json!({"orderId": order_id, "payments": [{"amount": 3000, "type": "CARD"}]}).to_string();
    let (status, declined, _) = call(&app, request(Some(&token), &body, None)).await;
    assert_eq!((status, code(&declined)), (502, "502PA000"));
    assert_eq!(measured.sum("PaymentsFailed", &[]), 1.0);
    assert_eq!(measured.sum("PaymentsCompleted", &[]), 0.0);
    assert_eq!(
        measured.sum("GatewayFailures", &[("Operation", "charge")]),
        1.0
    );
    assert_eq!(
        measured.sum(
            "Requests",
            &[("Function", "payment-create"), ("CodeClass", "5xx")]
        ),
        1.0
    );
}
