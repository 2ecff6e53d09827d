//! What an operator reads in CloudWatch Logs for one payment: every line the request writes
//! carries its API Gateway request id, and each dependency call is a span of its own that closes
//! with its duration.

use cafe::App;
use cafe::services::orders::{self, CreateOrderRequest, LineRequest};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};

mod support;
use support::member;

const SAMPLE: &str = include_str!("../../../events/payment-create.json");

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
            .collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_line_of_a_declined_payment_carries_its_request_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        cafe::telemetry::json_subscriber(tracing_subscriber::EnvFilter::new("info"), move || {
            writer.clone()
        });
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut config = cafe::testing::test_config();
    config.gateway.failure_rate = 1.0;
    let (app, _) = App::in_memory(config, cafe::testing::manual_clock())
        .await
        .expect("app");
    let (member, token) = member(&app, false).await;
    let order = orders::create_order(
        &app,
        &member.member_id,
        &CreateOrderRequest {
            items: vec![LineRequest {
                item_id: "01JC0FFEE00000000000000C01".into(),
                quantity: 1,
            }],
        },
    )
    .await
    .expect("order");
    let mut event: Value = serde_json::from_str(SAMPLE).expect("sample");
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event["body"] = json!(
        json!({"orderId": order.order_id, "payments": [{"amount": 1500, "type": "CARD"}]})
            .to_string()
    );
    let req = lambda_http::request::from_str(&event.to_string()).expect("event");
    let response = payment_create::handle(req, &app).await;
    assert_eq!(response.status().as_u16(), 502);

    let lines: Vec<Value> = captured
        .lines()
        .into_iter()
        .filter(|line| line["spans"].as_array().is_some_and(|s| !s.is_empty()))
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let request = &line["spans"][0];
        assert_eq!(request["name"], "request", "{line}");
        assert_eq!(request["function"], "payment-create");
        assert_eq!(request["api_request_id"], "Fz3kWiX5IE0EMbE=");
    }
    let closed: Vec<(&str, &str)> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "close" && line["span"]["name"] == "dependency")
        .map(|line| {
            (
                line["span"]["system"].as_str().unwrap_or(""),
                line["span"]["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(closed.contains(&("lock", "acquire")), "{closed:?}");
    assert!(closed.contains(&("gateway", "charge")), "{closed:?}");
    assert!(closed.contains(&("lock", "release")), "{closed:?}");
    let declined = lines
        .iter()
        .find(|line| line["fields"]["message"] == "payment gateway failed")
        .expect("the 502 is logged");
    assert_eq!(declined["level"], "WARN");
    assert!(
        !captured
            .lines()
            .iter()
            .any(|line| line.to_string().contains(&token)),
        "no line carries the bearer token"
    );
}
