//! moto's JSON-protocol APIs (SQS, EventBridge) for the suites that look at what reached a bus:
//! a queue behind a rule, and what it received. Shared as a module file, like `template`.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::time::Duration;

/// Calls a JSON-protocol API on moto at `endpoint`. The Authorization header is not checked,
/// but its credential scope tells moto which service is meant. An empty answer is `Null`.
pub async fn call(endpoint: &str, service: &str, target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{target}: moto does not answer: {e}"));
    let status = response.status();
    let text = response.text().await.expect("moto's answer");
    assert!(status.is_success(), "{target}: {status} {text}");
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text))
    }
}

/// A new queue `queue_name` receiving what the rule `rule` (with `pattern`) matches on `bus`;
/// returns the queue's URL.
pub async fn bus_queue(
    endpoint: &str,
    bus: &str,
    rule: &str,
    pattern: &Value,
    queue_name: &str,
) -> String {
    let queue = call(
        endpoint,
        "sqs",
        "AmazonSQS.CreateQueue",
        json!({"QueueName": queue_name}),
    )
    .await["QueueUrl"]
        .as_str()
        .expect("queue url")
        .to_owned();
    let arn = call(
        endpoint,
        "sqs",
        "AmazonSQS.GetQueueAttributes",
        json!({"QueueUrl": queue, "AttributeNames": ["QueueArn"]}),
    )
    .await["Attributes"]["QueueArn"]
        .as_str()
        .expect("queue arn")
        .to_owned();
    call(
        endpoint,
        "events",
        "AWSEvents.PutRule",
        json!({"Name": rule, "EventBusName": bus, "EventPattern": pattern.to_string()}),
    )
    .await;
    call(
        endpoint,
        "events",
        "AWSEvents.PutTargets",
        json!({"Rule": rule, "EventBusName": bus, "Targets": [{"Id": "queue", "Arn": arn}]}),
    )
    .await;
    queue
}

/// The envelopes delivered to `queue` since the last call, each deleted once read: waits for
/// `expected` of them (3 s at most), then once more for strays.
pub async fn drain(endpoint: &str, queue: &str, expected: usize) -> Vec<Value> {
    let mut envelopes = Vec::new();
    for _ in 0..30 {
        let answer = call(
            endpoint,
            "sqs",
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 3600}),
        )
        .await;
        let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
        let empty = messages.is_empty();
        for message in messages {
            let body = message["Body"].as_str().expect("message body");
            envelopes.push(serde_json::from_str(body).unwrap_or_else(|_| json!(body)));
            call(
                endpoint,
                "sqs",
                "AmazonSQS.DeleteMessage",
                json!({"QueueUrl": queue, "ReceiptHandle": message["ReceiptHandle"]}),
            )
            .await;
        }
        if empty && envelopes.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    envelopes
}
