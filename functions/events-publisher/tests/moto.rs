//! The real path on moto (one server for every service): the DynamoDB stream of a write made by
//! the store → this handler → `EventBridgePublisher` → a custom bus → a rule → an SQS queue the
//! test reads. Also the sample stream event through the real publisher, and per-entry refusals.

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_eventbridge::types::Target;
use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus};
use cafe::events::EventBridgePublisher;
use cafe::events::EventPublisher;
use cafe::events::eventbridge::RetryPolicy;
use cafe::store::MemberStore;
use cafe::testing;
use serde_json::{Value, json};
use std::time::Duration;

/// Calls a JSON-protocol API on moto. The Authorization header is not checked, but its credential
/// scope tells moto which service is meant.
async fn call(service: &str, target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(testing::dynamodb_endpoint())
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).expect("json answer")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A custom bus whose `cafe` events land in a new SQS queue; returns (bus name, queue URL).
async fn bus_with_queue() -> (String, String) {
    let bus = unique("cafe-bus");
    let queue = call(
        "sqs",
        "AmazonSQS.CreateQueue",
        json!({"QueueName": unique("cafe-events")}),
    )
    .await["QueueUrl"]
        .as_str()
        .expect("queue url")
        .to_owned();
    let queue_arn = call(
        "sqs",
        "AmazonSQS.GetQueueAttributes",
        json!({"QueueUrl": queue, "AttributeNames": ["QueueArn"]}),
    )
    .await["Attributes"]["QueueArn"]
        .as_str()
        .expect("queue arn")
        .to_owned();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(testing::dynamodb_endpoint())
        .load()
        .await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    events
        .put_rule()
        .name("all-cafe-events")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["cafe"]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("all-cafe-events")
        .event_bus_name(&bus)
        .targets(
            Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    (bus, queue)
}

/// Every message in the queue, as the EventBridge envelopes delivered there.
async fn delivered(queue: &str, expected: usize) -> Vec<Value> {
    let mut envelopes = Vec::new();
    for _ in 0..20 {
        let answer = call(
            "sqs",
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 300}),
        )
        .await;
        let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() && envelopes.len() >= expected {
            break;
        }
        for message in messages {
            let body = message["Body"].as_str().expect("message body");
            envelopes.push(serde_json::from_str(body).expect("envelope json"));
        }
        if envelopes.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    envelopes
}

async fn publisher(bus: &str) -> EventBridgePublisher {
    let aws = cafe::aws::Aws::load(
        Some(&testing::dynamodb_endpoint()),
        std::time::Duration::from_secs(10),
    )
    .await;
    EventBridgePublisher::from_aws(&aws, bus)
}

#[tokio::test]
async fn the_sample_stream_event_reaches_the_bus_with_its_event_id() {
    let (bus, queue) = bus_with_queue().await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/events-publisher.json"
    ))
    .expect("sample");
    let event: Event = serde_json::from_str(&text).expect("stream event");
    let response = events_publisher::handle(
        event,
        &publisher(&bus).await,
        &cafe::metrics::Metrics::disabled(),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let got = delivered(&queue, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["source"], "cafe");
    assert_eq!(got[0]["detail-type"], "MemberWithdrawn");
    assert_eq!(got[0]["detail"]["eventId"], "01KFAX3M8Z6W1Q9P2R4T7V5Y0B");
    assert_eq!(got[0]["detail"]["memberId"], "01KF9ZC2D4E6G8J0K2M4P6R8T0");
    assert_eq!(got[0]["detail"]["status"], "WITHDRAWN");
}

#[tokio::test]
async fn twenty_three_events_go_out_in_calls_of_ten_and_all_arrive() {
    let (bus, queue) = bus_with_queue().await;
    let events: Vec<DomainEvent> = (0..23)
        .map(|i| {
            DomainEvent::member(
                EventType::MemberRegistered,
                &format!("m{i}"),
                "SERVICE",
                testing::epoch(),
            )
        })
        .collect();
    let failed = publisher(&bus)
        .await
        .publish(&events)
        .await
        .expect("publish");
    assert!(failed.is_empty(), "{failed:?}");
    let got = delivered(&queue, 23).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|e| {
            e["detail"]["eventId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn an_entry_the_bus_refuses_is_retried_then_returned_by_id() {
    // PutEvents refuses an entry whose bus does not exist (per entry, not the whole call).
    let missing_bus = unique("no-such-bus");
    let events = vec![DomainEvent::member(
        EventType::MemberRestored,
        "m1",
        "SERVICE",
        testing::epoch(),
    )];
    let publisher = publisher(&missing_bus).await.with_retry(RetryPolicy {
        retries: 2,
        first_backoff: Duration::from_millis(5),
    });
    let failed = publisher.publish(&events).await.expect("publish");
    assert_eq!(failed, [events[0].event_id.clone()]);
}

fn member(at: chrono::DateTime<chrono::Utc>) -> Member {
    let member_id = cafe::ids::new_id(at);
    Member {
        email: format!("{}@example.com", member_id.to_lowercase()),
        member_id,
        name: "Stream Reader".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Male),
        birth: chrono::NaiveDate::from_ymd_opt(1991, 2, 3),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: at,
        session_version: 0,
    }
}

/// All records of the table's stream so far, as Lambda would hand them over.
async fn stream_records(table: &str) -> Vec<Value> {
    let description = call(
        "dynamodb",
        "DynamoDB_20120810.DescribeTable",
        json!({"TableName": table}),
    )
    .await;
    let stream_arn = description["Table"]["LatestStreamArn"]
        .as_str()
        .expect("the table has a stream")
        .to_owned();
    let stream = call(
        "dynamodb",
        "DynamoDBStreams_20120810.DescribeStream",
        json!({"StreamArn": stream_arn}),
    )
    .await;
    let mut records = Vec::new();
    for shard in stream["StreamDescription"]["Shards"]
        .as_array()
        .expect("shards")
    {
        let iterator = call(
            "dynamodb",
            "DynamoDBStreams_20120810.GetShardIterator",
            json!({"StreamArn": stream_arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await["ShardIterator"]
            .clone();
        let got = call(
            "dynamodb",
            "DynamoDBStreams_20120810.GetRecords",
            json!({"ShardIterator": iterator}),
        )
        .await;
        for mut record in got["Records"].as_array().cloned().unwrap_or_default() {
            record["eventSourceARN"] = json!(stream_arn);
            record["awsRegion"] = json!("us-east-1");
            records.push(record);
        }
    }
    records
}

#[tokio::test]
async fn a_store_write_flows_from_the_table_stream_to_the_bus() {
    // Not `fresh_store`: its tables leave the stream out, and this test reads it.
    let client = cafe::store::dynamo::build_client(
        Some(&testing::dynamodb_endpoint()),
        Duration::from_secs(30),
    )
    .await;
    let table = unique("cafe-stream");
    cafe::store::dynamo::table::create_table_with(&client, &table, true)
        .await
        .expect("table with stream");
    let store = cafe::store::dynamo::DynamoStore::new(client, table, 400);
    let (bus, queue) = bus_with_queue().await;
    let at = testing::epoch();
    let m = member(at);
    let registered = DomainEvent::member(EventType::MemberRegistered, &m.member_id, "SERVICE", at);
    let password = "$argon2id$v=19$m=8,t=1,p=1$c3RyZWFt$never-on-the-stream";
    store
        .create_member(
            &m,
            &cafe::domain::StoredPassword::new(password),
            &registered,
        )
        .await
        .expect("create");
    let withdrawn_at = at + chrono::Duration::hours(1);
    let withdrawn = DomainEvent::member(
        EventType::MemberWithdrawn,
        &m.member_id,
        "WITHDRAWN",
        withdrawn_at,
    );
    store
        .withdraw_member(&m.member_id, withdrawn_at, &withdrawn)
        .await
        .expect("withdraw");

    let records = stream_records(store.table_name()).await;
    let outbox_inserts = records
        .iter()
        .filter(|r| {
            r["eventName"] == "INSERT"
                && r["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .is_some_and(|pk| pk.starts_with("OUTBOX#"))
        })
        .count();
    assert_eq!(outbox_inserts, 2, "one outbox row per change: {records:?}");
    assert!(
        records.len() > outbox_inserts,
        "other writes are on the stream too"
    );
    // Every reader of the stream sees whole images of every write: the password is not in
    // any, because it lives in the credentials table, which has no stream.
    let text = serde_json::to_string(&records).expect("records as text");
    assert!(text.contains(&m.member_id) && text.contains("PROFILE"));
    assert!(
        !text.contains(password) && !text.contains("passwordHash"),
        "a password on the stream: {text}"
    );
    let credentials = call(
        "dynamodb",
        "DynamoDB_20120810.DescribeTable",
        json!({"TableName": store.credentials_table_name()}),
    )
    .await;
    assert_eq!(credentials["Table"]["LatestStreamArn"], Value::Null);
    assert_ne!(
        credentials["Table"]["StreamSpecification"]["StreamEnabled"],
        Value::Bool(true)
    );
    let event: Event =
        serde_json::from_value(json!({ "Records": records })).expect("a Lambda stream event");
    let response = events_publisher::handle(
        event,
        &publisher(&bus).await,
        &cafe::metrics::Metrics::disabled(),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());

    let got = delivered(&queue, 2).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or_default().to_owned(),
                e["detail"]["eventId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        ("MemberRegistered".to_owned(), registered.event_id.clone()),
        ("MemberWithdrawn".to_owned(), withdrawn.event_id.clone()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        got.iter()
            .all(|e| e["detail"]["memberId"] == m.member_id.as_str())
    );
}
