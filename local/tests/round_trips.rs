//! Round trips per endpoint: how many DynamoDB requests and Redis commands one request makes,
//! counted from the `dependency` spans every such call runs in (`cafe::telemetry`), on moto and
//! a real Redis with the production wiring (`App::on_aws`). The table below is exact: a change
//! that adds a round trip fails here, and one that removes one must lower its row (and
//! `BENCHMARKS.md`'s table, which also gives the minimum each endpoint could make).
//!
//! Counted in steady state: connections open, keys cached. Once per process, not per request:
//! the Redis connection (one per lock and one per login throttle) and, on AWS, the token keys'
//! Secrets Manager read (this app signs with an inline keyset).

use cafe::App;
use cafe::domain::Role;
use cafe::store::dynamo::table;
use cafe_local::testing::{SignedUp, call, request, sign_up, staff};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Every `dependency` span opened, as (system, operation).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> Layer<S> for Calls {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let Some(named) = cafe::spans::DependencyFields::of(attrs) else {
            return;
        };
        if let Ok(mut calls) = self.0.lock() {
            calls.push((named.system, named.operation));
        }
    }
}

impl Calls {
    fn take(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// What one request cost: DynamoDB requests and Redis commands, with the operations by name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cost {
    dynamodb: usize,
    redis: usize,
    operations: Vec<String>,
}

fn cost_of(calls: Vec<(String, String)>) -> Cost {
    let of = |system: &str| calls.iter().filter(|(s, _)| s == system).count();
    Cost {
        dynamodb: of("dynamodb"),
        redis: calls
            .iter()
            .filter(|(s, o)| s == "redis" && o != "connect")
            .count(),
        operations: calls
            .iter()
            .filter(|(s, o)| matches!(s.as_str(), "dynamodb" | "redis") && o != "connect")
            .map(|(s, o)| format!("{s}:{o}"))
            .collect(),
    }
}

/// (endpoint case, DynamoDB requests, Redis commands): what each makes today.
const EXPECTED: &[(&str, usize, usize)] = &[
    ("POST /member", 1, 1),
    ("POST /auth/login", 3, 2),
    ("POST /auth/refresh", 3, 0),
    ("GET /member/{id}", 1, 0),
    ("GET /items", 1, 0),
    ("GET /items/{id}", 1, 0),
    ("POST /order", 2, 0),
    ("GET /order/{id}", 2, 0),
    ("GET /order/{id} (in the making)", 5, 0),
    ("GET /orders", 2, 0),
    ("POST /payment (1 part)", 6, 2),
    ("POST /payment (1 part, Idempotency-Key)", 7, 2),
    ("POST /payment (2 parts)", 7, 2),
    ("DELETE /order/{id}/cancel (pending)", 3, 0),
    ("DELETE /order/{id}/cancel (paid)", 4, 2),
    ("DELETE /member/{id}/withdraw", 2, 0),
    ("POST /member/{id}/restore", 2, 0),
    ("POST /auth/logout", 2, 0),
    ("POST /auth/logout (everywhere)", 3, 0),
    ("GET /.well-known/jwks.json", 0, 0),
    ("PUT /admin/members/{id}/role", 2, 0),
    ("POST /admin/items", 2, 0),
    ("PATCH /admin/items/{id}", 4, 0),
    ("POST /admin/items/{id}/stock", 4, 0),
    ("GET /admin/orders", 2, 0),
    ("GET /admin/items", 2, 0),
    ("PUT /admin/orders/{id}/status", 3, 0),
    ("PUT /admin/orders/{id}/status (READY)", 3, 0),
    ("GET /shop", 1, 0),
    ("GET /shop/board", 3, 0),
    ("PUT /admin/shop", 3, 0),
    ("POST /live/ticket", 2, 0),
];

struct Cafe {
    app: App,
    calls: Calls,
    measured: BTreeMap<String, Cost>,
}

impl Cafe {
    /// Calls and measures `req` under `case`; answers the body after checking the status.
    async fn measure(&mut self, case: &str, req: lambda_http::Request, status: u16) -> Value {
        self.calls.take();
        let (got, body) = call(&self.app, req).await;
        assert_eq!(got, status, "{case}: {body}");
        self.measured
            .insert(case.to_owned(), cost_of(self.calls.take()));
        body
    }

    async fn order(&self, member: &SignedUp, item: &str) -> String {
        let (status, body) = call(
            &self.app,
            request("POST", "/order")
                .bearer(&member.access)
                .json(&json!({"items": [{"itemId": item, "quantity": 1}]}))
                .build(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["result"]["orderId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn pay(&self, member: &SignedUp, order_id: &str) {
        let (status, body) = call(&self.app, payment(member, order_id, &[PRICE], None)).await;
        assert_eq!(status, 200, "{body}");
    }
}

const COLA: &str = "01JC0FFEE00000000000000C01";
/// One cola, what every order here costs.
const PRICE: i64 = 1_500;

fn payment(
    member: &SignedUp,
    order_id: &str,
    parts: &[i64],
    key: Option<&str>,
) -> lambda_http::Request {
    let payments: Vec<Value> = parts
        .iter()
        .enumerate()
        .map(|(n, amount)| json!({"amount": amount, "type": if n == 0 { "CARD" } else { "POINT" }}))
        .collect();
    let mut req = request("POST", "/payment")
        .bearer(&member.access)
        .json(&json!({"orderId": order_id, "payments": payments}));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.build()
}

async fn aws_app() -> App {
    let endpoint = cafe::testing::dynamodb_endpoint();
    let aws = cafe::aws::Aws::load(Some(&endpoint), std::time::Duration::from_secs(10)).await;
    let table_name = format!(
        "cafe-trips-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    table::create_table_with(&aws.dynamodb(), &table_name, false)
        .await
        .expect("table on moto");
    let mut config = cafe::testing::test_config();
    config.backend = cafe::config::Backend::Aws;
    config.table_name = table_name;
    config.dynamodb_endpoint = Some(endpoint);
    config.redis_url = Some(cafe::testing::redis_url());
    let app = App::on_aws(config, &aws).await.expect("app on moto");
    for item in cafe::domain::item::seed_items() {
        app.store
            .put_item(&cafe::domain::Item {
                stock: 1_000,
                ..item
            })
            .await
            .expect("seed an item");
    }
    app
}

#[tokio::test(flavor = "current_thread")]
async fn every_endpoint_makes_exactly_its_round_trips() {
    let calls = Calls::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(calls.clone()));
    let mut cafe = Cafe {
        app: aws_app().await,
        calls,
        measured: BTreeMap::new(),
    };
    // Warm up: both Redis connections open, the SDK's connection pool has a connection.
    let admin = staff(&cafe.app, Role::Admin).await;
    let member = sign_up(&cafe.app).await;
    let warm = cafe.order(&member, COLA).await;
    cafe.pay(&member, &warm).await;

    let email = cafe_local::testing::unique_email();
    let signed = cafe
        .measure(
            "POST /member",
            // API Gateway always gives the address: the sign-up throttle's one Redis call.
            request("POST", "/member")
                .json(&cafe_local::testing::sign_up_body(&email))
                .from_ip("198.51.100.7")
                .build(),
            201,
        )
        .await;
    let refresh = signed["result"]["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cafe.measure(
        "POST /auth/login",
        request("POST", "/auth/login")
            .json(&json!({"email": member.email, "password": cafe_local::testing::PASSWORD}))
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "POST /auth/refresh",
        request("POST", "/auth/refresh")
            .json(&json!({"refreshToken": refresh}))
            .build(),
        200,
    )
    .await;
    let me = format!("/member/{}", member.member_id);
    cafe.measure(
        "GET /member/{id}",
        request("GET", &me).bearer(&member.access).build(),
        200,
    )
    .await;
    cafe.measure("GET /items", request("GET", "/items").build(), 200)
        .await;
    cafe.measure(
        "GET /items/{id}",
        request("GET", &format!("/items/{COLA}")).build(),
        200,
    )
    .await;
    let placed = cafe
        .measure(
            "POST /order",
            request("POST", "/order")
                .bearer(&member.access)
                .json(&json!({"items": [{"itemId": COLA, "quantity": 1}]}))
                .build(),
            201,
        )
        .await;
    let order_id = placed["result"]["orderId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cafe.measure(
        "GET /order/{id}",
        request("GET", &format!("/order/{order_id}"))
            .bearer(&member.access)
            .build(),
        200,
    )
    .await;
    // Paid, not yet made: its wait counts the queue and reads the day's make times.
    cafe.measure(
        "GET /order/{id} (in the making)",
        request("GET", &format!("/order/{warm}"))
            .bearer(&member.access)
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "GET /orders",
        request("GET", "/orders").bearer(&member.access).build(),
        200,
    )
    .await;
    cafe.measure(
        "POST /payment (1 part)",
        payment(&member, &order_id, &[PRICE], None),
        200,
    )
    .await;
    let keyed = cafe.order(&member, COLA).await;
    cafe.measure(
        "POST /payment (1 part, Idempotency-Key)",
        payment(&member, &keyed, &[PRICE], Some("trip-key-1")),
        200,
    )
    .await;
    let split = cafe.order(&member, COLA).await;
    cafe.measure(
        "POST /payment (2 parts)",
        payment(&member, &split, &[500, PRICE - 500], None),
        200,
    )
    .await;
    let pending = cafe.order(&member, COLA).await;
    cafe.measure(
        "DELETE /order/{id}/cancel (pending)",
        request("DELETE", &format!("/order/{pending}/cancel"))
            .bearer(&member.access)
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "DELETE /order/{id}/cancel (paid)",
        request("DELETE", &format!("/order/{order_id}/cancel"))
            .bearer(&member.access)
            .build(),
        200,
    )
    .await;

    // The staff side, on the admin made before measuring.
    let clerk = sign_up(&cafe.app).await;
    cafe.measure(
        "PUT /admin/members/{id}/role",
        request("PUT", &format!("/admin/members/{}/role", clerk.member_id))
            .bearer(&admin.access)
            .json(&json!({"role": "STAFF"}))
            .build(),
        200,
    )
    .await;
    let created = cafe
        .measure(
            "POST /admin/items",
            request("POST", "/admin/items")
                .bearer(&admin.access)
                .json(&json!({"name": "Round trip tea", "price": 3500, "stock": 10}))
                .build(),
            201,
        )
        .await;
    let item_id = created["result"]["itemId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let version = created["result"]["version"].as_i64().unwrap_or_default();
    let updated = cafe
        .measure(
            "PATCH /admin/items/{id}",
            request("PATCH", &format!("/admin/items/{item_id}"))
                .bearer(&admin.access)
                .json(&json!({"version": version, "price": 3700}))
                .build(),
            200,
        )
        .await;
    let version = updated["result"]["version"].as_i64().unwrap_or_default();
    cafe.measure(
        "POST /admin/items/{id}/stock",
        request("POST", &format!("/admin/items/{item_id}/stock"))
            .bearer(&admin.access)
            .json(&json!({"version": version, "mode": "ADD", "quantity": 5, "reason": "delivery"}))
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "GET /admin/items",
        request("GET", "/admin/items").bearer(&admin.access).build(),
        200,
    )
    .await;
    cafe.measure(
        "GET /admin/orders",
        request("GET", "/admin/orders")
            .bearer(&admin.access)
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "PUT /admin/orders/{id}/status",
        request("PUT", &format!("/admin/orders/{split}/status"))
            .bearer(&admin.access)
            .json(&json!({"status": "PREPARING"}))
            .build(),
        200,
    )
    .await;
    // READY gives the floor slot back and counts the make time in the same transaction.
    cafe.measure(
        "PUT /admin/orders/{id}/status (READY)",
        request("PUT", &format!("/admin/orders/{split}/status"))
            .bearer(&admin.access)
            .json(&json!({"status": "READY"}))
            .build(),
        200,
    )
    .await;
    cafe.measure("GET /shop", request("GET", "/shop").build(), 200)
        .await;
    cafe.measure(
        "GET /shop/board",
        request("GET", "/shop/board").build(),
        200,
    )
    .await;
    cafe.measure(
        "PUT /admin/shop",
        request("PUT", "/admin/shop")
            .bearer(&admin.access)
            .json(&json!({"open": true, "message": "Welcome"}))
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "POST /live/ticket",
        request("POST", "/live/ticket")
            .bearer(&admin.access)
            .build(),
        200,
    )
    .await;

    cafe.measure(
        "GET /.well-known/jwks.json",
        request("GET", "/.well-known/jwks.json").build(),
        200,
    )
    .await;
    let leaving = sign_up(&cafe.app).await;
    let leaving_path = format!("/member/{}", leaving.member_id);
    cafe.measure(
        "DELETE /member/{id}/withdraw",
        request("DELETE", &format!("{leaving_path}/withdraw"))
            .bearer(&leaving.access)
            .build(),
        200,
    )
    .await;
    cafe.measure(
        "POST /member/{id}/restore",
        request("POST", &format!("{leaving_path}/restore"))
            .bearer(&leaving.access)
            .build(),
        200,
    )
    .await;
    // Log-out: the token read, the family's marker written; everywhere also moves the member's
    // session version on (one UpdateItem).
    for (case, everywhere) in [
        ("POST /auth/logout", false),
        ("POST /auth/logout (everywhere)", true),
    ] {
        let session = sign_up(&cafe.app).await;
        cafe.measure(
            case,
            request("POST", "/auth/logout")
                .json(&json!({"refreshToken": session.refresh, "everywhere": everywhere}))
                .build(),
            200,
        )
        .await;
    }

    let mut problems = Vec::new();
    for (case, dynamodb, redis) in EXPECTED {
        match cafe.measured.get(*case) {
            None => problems.push(format!("{case}: not measured")),
            Some(cost) if (cost.dynamodb, cost.redis) != (*dynamodb, *redis) => problems.push(
                format!(
                    "{case}: {} DynamoDB requests and {} Redis commands, the table says {dynamodb} and {redis}: {:?}",
                    cost.dynamodb, cost.redis, cost.operations
                ),
            ),
            Some(_) => {}
        }
    }
    for (case, cost) in &cafe.measured {
        println!(
            "{case:45} {:>2} {:>2}  {}",
            cost.dynamodb,
            cost.redis,
            cost.operations.join(" ")
        );
    }
    assert!(
        problems.is_empty(),
        "round trips changed:\n  - {}",
        problems.join("\n  - ")
    );
}

/// Every SDK call and Redis command in the shared crate runs in a `dependency` span, or the
/// count above would miss it.
#[test]
fn every_dependency_call_in_the_code_opens_a_span() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut unspanned = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("shared/src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for marker in [".send()", ".query_async(", ".invoke_async("] {
                for (at, _) in text.match_indices(marker) {
                    let after = &text[at..(at + 200).min(text.len())];
                    if !after.contains(".instrument(") {
                        let line = text[..at].lines().count();
                        unspanned.push(format!("{}:{line} {marker}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        unspanned.is_empty(),
        "calls without a dependency span: {unspanned:#?}"
    );
}
