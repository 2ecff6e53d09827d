//! Every function's release binary, run under cargo-lambda's Runtime API emulator (`cargo lambda
//! watch --only-lambda-apis`), answers what its in-process handler answers.
//!
//! Run only by `scripts/emulator.sh`, which builds the binaries, generates one event per function
//! with `sam local generate-event`, creates an EventBridge bus on moto, starts the emulator and
//! every binary against it (AWS backend, the moto + Redis of `scripts/services.sh`), and passes:
//!
//! | variable | what |
//! |---|---|
//! | `CAFE_EMULATOR_URL` | the emulator, e.g. `http://127.0.0.1:9000` |
//! | `CAFE_EMULATOR_RUN_DIR` | the run directory: `events/<function>.json` are the sam events |
//! | `CAFE_EMULATOR_TABLE` | the table the binaries use; this test creates it |
//! | `CAFE_EMULATOR_BUS` | the EventBridge bus the `events-publisher` binary publishes to |
//! | `CAFE_TEST_DYNAMODB_ENDPOINT`, `CAFE_TEST_REDIS_URL` | moto and Redis |
//!
//! Missing variables fail the test (they never skip it).
//!
//! The test creates the table (without a stream: nothing here reads it, and moto copies every
//! stream record on each transaction) before the first invocation, and builds an in-process
//! `cafe::App` over the same table and Redis with the same token keys and Argon2 cost. It makes twin
//! fixtures — the same members and orders twice — then sends every case to the in-process
//! handler with the in-process twin's ids and to the binary through the emulator with the
//! emulator twin's ids. Both answers are compared after replacing each twin's ids with named
//! placeholders (so an answer naming the wrong order still differs) and generated values (ULIDs,
//! JWTs, refresh tokens, RFC 3339 timestamps, opaque cursors, EventBridge envelope ids) with
//! generic ones. HTTP answers are compared as the API Gateway v2 response the binary posts:
//! status, headers (content-type included), cookies, `isBase64Encoded` and the JSON body.
//! The two other functions are compared on their JSON answer or their Lambda error
//! (`{errorType, errorMessage}`), and the `events-publisher` cases also on what reached the bus.
//!
//! Functions whose answers differ are written to `$CAFE_EMULATOR_RUN_DIR/failures.txt`.

mod moto;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cafe::App;
use cafe::clock::SystemClock;
use cafe::config::Backend;
use cafe::domain::{DomainEvent, EventType, Item};
use cafe::events::EventBridgePublisher;
use cafe::lock::RedisLock;
use cafe::routes::{NON_HTTP_FUNCTIONS, ROUTES, Route};
use cafe::store::dynamo::{DynamoStore, table};
use cafe::store::{ItemStore, withdrawn_shard};
use cafe_local::testing::{self, SignedUp};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use lambda_http::{Body, RequestExt, Response};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COLA: &str = "01JC0FFEE00000000000000C01";
const BOOK: &str = "01JC0FFEE00000000000000B02";
/// How long one invocation through the emulator may take (a dead binary would hang it forever).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The dependency timeout every binary runs with (the default of `DEPENDENCY_TIMEOUT_MS`).
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(3);
/// Functions with no error answer to compare: `GET /items` and `GET /.well-known/jwks.json` read
/// nothing of the request, so only a failing dependency (which both sides share) could fail them.
/// `live-sender` fails only when the table cannot be read (which both sides share): a post that
/// fails, 410 included, is its answer's business, not an error.
const NO_ERROR_ANSWER: &[&str] = &[
    "items-list",
    "jwks-get",
    "shop-get",
    "shop-board",
    "live-sender",
];
/// The refresh reuse grace both sides run with (`REFRESH_REUSE_GRACE_SECONDS` in
/// scripts/emulator.sh): short, so the case after it can wait it out.
const REFRESH_GRACE_SECONDS: i64 = 2;
/// The `lambda-runtime-deadline-ms` cargo-lambda 1.9.2's emulator answers every `next` with: the
/// constant 600000 (crates/cargo-lambda-watch/src/runtime/functions_router.rs), which the Runtime
/// API defines, and lambda_runtime reads, as milliseconds since the Unix epoch:
/// 1970-01-01T00:10:00Z, a deadline long past when the invocation starts.
const EMULATOR_DEADLINE_MS: u64 = 600_000;
/// The members the expiry job ends are in this shard of the withdrawn index: not the first one,
/// which is the only shard a run that trusted an already-past deadline would read.
const EXPIRING_SHARD: u32 = 1;

/// A Lambda context with the deadline the emulator hands the binaries.
fn emulator_context() -> lambda_http::Context {
    let mut context = lambda_http::Context::default();
    context.deadline = EMULATOR_DEADLINE_MS;
    context
}

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!("{name} is not set: this test runs only from scripts/emulator.sh"),
    }
}

struct Settings {
    emulator: String,
    run_dir: PathBuf,
    table: String,
    bus: String,
    moto: String,
    redis: String,
    /// The stub of the live WebSocket API's management endpoint (every post: 410).
    live_endpoint: String,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            emulator: required("CAFE_EMULATOR_URL"),
            run_dir: PathBuf::from(required("CAFE_EMULATOR_RUN_DIR")),
            table: required("CAFE_EMULATOR_TABLE"),
            bus: required("CAFE_EMULATOR_BUS"),
            moto: required("CAFE_TEST_DYNAMODB_ENDPOINT"),
            redis: required("CAFE_TEST_REDIS_URL"),
            live_endpoint: required("CAFE_EMULATOR_LIVE_ENDPOINT"),
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Normalisation: named placeholders for each twin's ids, generic ones for generated values.

/// (value, placeholder) pairs of one twin, longest value first when applied.
#[derive(Default, Clone)]
struct Names(Vec<(String, String)>);

impl Names {
    fn add(&mut self, value: &str, placeholder: &str) {
        self.0.push((value.to_owned(), format!("<{placeholder}>")));
        self.0
            .sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    }
}

fn is_jwt(s: &str) -> bool {
    s.starts_with("eyJ")
        && s.matches('.').count() == 2
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Replaces every ULID inside `s` (a run of exactly 26 alphanumerics that parses) by `<ulid>`.
fn replace_ulids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 26 && cafe::ids::is_well_formed(run) {
            out.push_str("<ulid>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn normalize_str(s: &str, names: &Names) -> Value {
    let mut s = s.to_owned();
    for (value, placeholder) in &names.0 {
        if !value.is_empty() {
            s = s.replace(value.as_str(), placeholder);
        }
    }
    if is_jwt(&s) {
        return json!("<jwt>");
    }
    if cafe::auth::refresh::is_well_formed(&s) {
        return json!("<refresh-token>");
    }
    if DateTime::parse_from_rfc3339(&s).is_ok() {
        return json!("<timestamp>");
    }
    json!(replace_ulids(&s))
}

fn normalize(value: &Value, names: &Names) -> Value {
    match value {
        Value::String(s) => normalize_str(s, names),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, names)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                let normalized = match (key.as_str(), v) {
                    // Opaque cursors: compared on what they encode.
                    ("nextCursor", Value::String(cursor)) => {
                        match URL_SAFE_NO_PAD
                            .decode(cursor)
                            .ok()
                            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                        {
                            Some(decoded) => json!({ "<cursor>": normalize(&decoded, names) }),
                            None => json!("<undecodable cursor>"),
                        }
                    }
                    // The envelope id EventBridge (moto) gives each delivered event.
                    ("id", Value::String(id)) if is_uuid(id) => json!("<uuid>"),
                    // Random per sign-up or log-in.
                    ("deviceToken", Value::String(_)) => json!("<device-token>"),
                    // Random per `POST /live/ticket`.
                    ("ticket", Value::String(ticket))
                        if cafe::domain::live::ticket_is_well_formed(ticket) =>
                    {
                        json!("<live-ticket>")
                    }
                    // The twins share the shop's day counter and its queue: each takes its own
                    // number and sees the other's order ahead of or behind its own.
                    ("pickupNumber", Value::Number(_)) => json!("<pickup-number>"),
                    ("ordersAhead", Value::Number(_)) => json!("<orders-ahead>"),
                    ("estimatedWaitMinutes", Value::Number(_)) => json!("<minutes>"),
                    // The pickup board lists both twins' numbers, in the order they were paid.
                    ("making" | "ready", Value::Array(numbers))
                        if numbers.iter().all(Value::is_u64) =>
                    {
                        json!("<pickup-numbers>")
                    }
                    _ => normalize(v, names),
                };
                out.insert(key.clone(), normalized);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers, as comparable JSON views.

/// A body as JSON when it is JSON, else as the string it is.
fn body_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

/// What the in-process handler's response becomes on the wire: the API Gateway v2 response
/// (`lambda_http` moves `set-cookie` into `cookies` and joins repeated headers with commas).
fn in_process_http_view(response: Response<Body>) -> Value {
    let (parts, body) = response.into_parts();
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == http::header::SET_COOKIE {
            cookies.extend(values.into_iter().map(Value::String));
        } else {
            headers.insert(name.as_str().to_owned(), json!(values.join(",")));
        }
    }
    let mut view = Map::new();
    view.insert("invokeStatus".into(), json!(200));
    view.insert("statusCode".into(), json!(parts.status.as_u16()));
    view.insert("headers".into(), Value::Object(headers));
    view.insert("cookies".into(), Value::Array(cookies));
    let (is_base64, body) = match body {
        Body::Empty => (false, None),
        Body::Text(text) => (false, Some(body_value(&text))),
        Body::Binary(raw) => (true, Some(body_value(&String::from_utf8_lossy(&raw)))),
        _ => (false, Some(json!("<unknown body kind>"))),
    };
    view.insert("isBase64Encoded".into(), json!(is_base64));
    if let Some(body) = body {
        view.insert("body".into(), body);
    }
    Value::Object(view)
}

/// The API Gateway v2 response a binary posted, as returned by the emulator, in the same shape
/// as [`in_process_http_view`]; a field the in-process view has no counterpart for is kept
/// under `unexpected:<name>` so it shows in the comparison.
fn emulator_http_view(invoke_status: u16, payload: Value) -> Value {
    let Value::Object(fields) = payload else {
        return json!({"invokeStatus": invoke_status, "payload": payload});
    };
    if invoke_status != 200 {
        return json!({"invokeStatus": invoke_status, "payload": fields});
    }
    let mut view = Map::new();
    view.insert("invokeStatus".into(), json!(invoke_status));
    let is_base64 = fields
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (name, value) in fields {
        match name.as_str() {
            "statusCode" | "isBase64Encoded" => {
                view.insert(name, value);
            }
            "cookies" => {
                view.insert(name, value);
            }
            "headers" => {
                let lowered: Map<String, Value> = value
                    .as_object()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                view.insert(name, Value::Object(lowered));
            }
            "multiValueHeaders" if value.as_object().is_some_and(Map::is_empty) => {}
            "body" => match value {
                Value::Null => {}
                Value::String(text) if is_base64 => {
                    let decoded = STANDARD
                        .decode(text.as_bytes())
                        .map(|raw| body_value(&String::from_utf8_lossy(&raw)))
                        .unwrap_or_else(|_| json!("<invalid base64>"));
                    view.insert(name, decoded);
                }
                Value::String(text) => {
                    view.insert(name, body_value(&text));
                }
                other => {
                    view.insert("unexpected:body".into(), other);
                }
            },
            _ => {
                view.insert(format!("unexpected:{name}"), value);
            }
        }
    }
    view.entry("cookies").or_insert_with(|| json!([]));
    Value::Object(view)
}

/// The HTTP status of an HTTP function's view (None for the other functions).
fn status_of(view: &Value) -> Option<u16> {
    view.get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
}

fn text(view: &Value, pointer: &str) -> String {
    view.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {view}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Events: the samples of events/ and the sam-generated ones, filled in for one twin.

/// What one HTTP invocation carries.
#[derive(Default, Clone)]
struct Call {
    params: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    bearer: Option<String>,
    body: Option<Value>,
    /// Headers to set (lowercase names), replacing any of the template's.
    headers: Vec<(&'static str, String)>,
    /// Drop the template's `idempotency-key` (the payment sample has one).
    without_idempotency_key: bool,
}

impl Call {
    fn new() -> Self {
        Self::default()
    }
    fn param(mut self, name: &'static str, value: &str) -> Self {
        self.params.push((name, value.to_owned()));
        self
    }
    fn query(mut self, name: &'static str, value: &str) -> Self {
        self.query.push((name, value.to_owned()));
        self
    }
    fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn without_idempotency_key(mut self) -> Self {
        self.without_idempotency_key = true;
        self
    }
}

fn route_of(function: &str) -> Route {
    *ROUTES
        .iter()
        .find(|r| r.function == function)
        .unwrap_or_else(|| panic!("{function} is not in the route table"))
}

/// `template` (an API Gateway HTTP API event) with the method, path, path parameters, route
/// key, query, headers and body of `call` on `function`'s route.
fn http_event(template: &Value, function: &str, call: &Call) -> Value {
    let route = route_of(function);
    let mut path = route.path.to_owned();
    for (name, value) in &call.params {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !path.contains('{'),
        "{function}: a path parameter is missing"
    );
    let route_key = format!("{} {}", route.method, route.path);
    let mut event = template.clone();
    event["routeKey"] = json!(route_key);
    event["rawPath"] = json!(path);
    event["requestContext"]["routeKey"] = json!(route_key);
    event["requestContext"]["http"]["method"] = json!(route.method);
    event["requestContext"]["http"]["path"] = json!(path);
    let object = event.as_object_mut().expect("an event is a JSON object");
    if call.params.is_empty() {
        object.remove("pathParameters");
    } else {
        let params: Map<String, Value> = call
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        object.insert("pathParameters".into(), Value::Object(params));
    }
    let raw_query: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    object.insert("rawQueryString".into(), json!(raw_query.join("&")));
    if call.query.is_empty() {
        object.remove("queryStringParameters");
    } else {
        let query: Map<String, Value> = call
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        object.insert("queryStringParameters".into(), Value::Object(query));
    }
    let body = call.body.as_ref().map(Value::to_string);
    let mut headers: Map<String, Value> = object
        .get("headers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    headers.retain(|name, _| {
        let name = name.to_ascii_lowercase();
        name != "authorization"
            && !(call.without_idempotency_key && name == "idempotency-key")
            && !call.headers.iter().any(|(set, _)| *set == name)
    });
    if let Some(token) = &call.bearer {
        headers.insert("authorization".into(), json!(format!("Bearer {token}")));
    }
    if let Some(body) = &body {
        headers.insert("content-type".into(), json!("application/json"));
        if headers.contains_key("content-length") {
            headers.insert("content-length".into(), json!(body.len().to_string()));
        }
    } else if headers.contains_key("content-length") {
        headers.insert("content-length".into(), json!("0"));
    }
    for (name, value) in &call.headers {
        headers.insert((*name).to_owned(), json!(value));
    }
    object.insert("headers".into(), Value::Object(headers));
    match body {
        Some(body) => object.insert("body".into(), json!(body)),
        None => object.remove("body"),
    };
    object.insert("isBase64Encoded".into(), json!(false));
    event
}

/// The body of a sample, parsed.
fn sample_body(sample: &Value) -> Value {
    let raw = sample["body"].as_str().expect("the sample has a body");
    serde_json::from_str(raw).expect("the sample's body is JSON")
}

/// An outbox insert record of a stream event, for `event` (what the store writes).
fn outbox_record(mut record: Value, event: &DomainEvent) -> Value {
    let pk = format!("OUTBOX#{}", event.event_id);
    let raw = serde_json::to_string(event).expect("events serialise");
    record["eventName"] = json!("INSERT");
    record["dynamodb"]["Keys"] = json!({"pk": {"S": pk}, "sk": {"S": "EVENT"}});
    record["dynamodb"]["NewImage"] = json!({
        "pk": {"S": pk},
        "sk": {"S": "EVENT"},
        "eventType": {"S": event.event_type.as_str()},
        "event": {"S": raw},
        "ttl": {"N": (event.occurred_at.timestamp() + 7 * 86_400).to_string()},
    });
    record
}

// ---------------------------------------------------------------------------------------------
// Twins: the same fixtures twice, one per side.

/// The items of every fixture order: 2 × 1,500 + 25,000 = 28,000 KRW.
fn order_body() -> Value {
    json!({"items": [{"itemId": COLA, "quantity": 2}, {"itemId": BOOK, "quantity": 1}]})
}

fn payment_body(order_id: &str) -> Value {
    json!({"orderId": order_id, "payments": [
        {"amount": 20000, "type": "CARD"},
        {"amount": 8000, "type": "POINT"},
    ]})
}

struct Twin {
    /// 0: the in-process side, 1: the emulator side.
    index: usize,
    side: &'static str,
    names: Names,
    owner: SignedUp,
    leavers: [SignedUp; 2],
    /// The member the expiry job ends, and when it withdrew.
    expiring: Option<(String, DateTime<Utc>)>,
    /// Order fixtures by name.
    orders: Vec<(&'static str, String)>,
    /// The live refresh token of the owner's second family (the first is used up by the cases).
    refresh: String,
    /// A `STAFF` and an `ADMIN` member (made as `cafe-admin` does), a customer the admin
    /// promotes, and an item the staff member created.
    staff: SignedUp,
    admin: SignedUp,
    promoted: SignedUp,
    item: String,
}

impl Twin {
    fn order(&self, name: &str) -> &str {
        self.orders
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id.as_str())
            .unwrap_or_else(|| panic!("no order fixture {name}"))
    }
}

async fn create_order(app: &App, member: &SignedUp) -> String {
    let (status, body) = testing::call(
        app,
        testing::request("POST", "/order")
            .bearer(&member.access)
            .json(&order_body())
            .build(),
    )
    .await;
    assert_eq!(status, 201, "fixture order: {body}");
    body["result"]["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned()
}

async fn pay(app: &App, member: &SignedUp, order_id: &str) {
    let (status, body) = testing::call(
        app,
        testing::request("POST", "/payment")
            .bearer(&member.access)
            .json(&payment_body(order_id))
            .build(),
    )
    .await;
    assert_eq!(status, 200, "fixture payment: {body}");
}

async fn make_twin(app: &App, index: usize, side: &'static str) -> Twin {
    let owner = testing::sign_up(app).await;
    let leavers = [testing::sign_up(app).await, testing::sign_up(app).await];
    let mut names = Names::default();
    names.add(&owner.member_id, "owner");
    names.add(&owner.email, "owner-email");
    names.add(&owner.refresh, "owner-refresh");
    for (i, leaver) in leavers.iter().enumerate() {
        names.add(&leaver.member_id, &format!("leaver-{}", i + 1));
        names.add(&leaver.email, &format!("leaver-{}-email", i + 1));
    }
    let mut orders = Vec::new();
    for (name, paid) in [
        ("shown", true),
        ("pay-sample", false),
        ("pay-sam", false),
        ("pay-mismatch", false),
        ("pay-deadline", false),
        ("cancel-pending", false),
        ("cancel-paid", true),
        ("fulfil", true),
    ] {
        let id = create_order(app, &owner).await;
        if paid {
            pay(app, &owner, &id).await;
        }
        names.add(&id, &format!("order:{name}"));
        orders.push((name, id));
    }
    // A second login: a live refresh token for the sam case of auth-refresh.
    let (status, login) = testing::call(
        app,
        testing::request("POST", "/auth/login")
            .json(&json!({"email": owner.email, "password": testing::PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(status, 200, "fixture login: {login}");
    let refresh = login["result"]["refreshToken"]
        .as_str()
        .expect("refreshToken")
        .to_owned();
    names.add(&refresh, "owner-refresh-2");
    let staff = testing::staff(app, cafe::domain::Role::Staff).await;
    let admin = testing::staff(app, cafe::domain::Role::Admin).await;
    let promoted = testing::sign_up(app).await;
    for (member, name) in [
        (&staff, "staff"),
        (&admin, "admin"),
        (&promoted, "promoted"),
    ] {
        names.add(&member.member_id, name);
        names.add(&member.email, &format!("{name}-email"));
    }
    let (status, created) = testing::call(
        app,
        testing::request("POST", "/admin/items")
            .bearer(&staff.access)
            // Inactive: customers' `GET /items`, compared on both sides, never shows it.
            .json(&json!({"name": format!("Latte {side}"), "price": 4_500, "stock": 30, "active": false}))
            .build(),
    )
    .await;
    assert_eq!(status, 201, "fixture item: {created}");
    let item = created["result"]["itemId"]
        .as_str()
        .expect("itemId")
        .to_owned();
    names.add(&item, "item");
    names.add(&format!("Latte {side}"), "item-name");
    Twin {
        staff,
        admin,
        promoted,
        item,
        index,
        side,
        names,
        owner,
        leavers,
        expiring: None,
        orders,
        refresh,
    }
}

/// One member per twin, withdrawn 10 days before now (plus one hour for the second twin) through
/// the store, both in [`EXPIRING_SHARD`] of the withdrawn index, so the expiry job's answer (which
/// reports per shard) can be the same for both.
async fn add_expiring(app: &App, twins: &mut [Twin; 2]) {
    let first_at = (Utc::now() - ChronoDuration::days(10)).trunc_subsecs(3);
    for (i, twin) in twins.iter_mut().enumerate() {
        let at = first_at + ChronoDuration::hours(i64::try_from(i).expect("small"));
        let member = loop {
            let candidate = testing::sign_up(app).await;
            if withdrawn_shard(&candidate.member_id) == EXPIRING_SHARD {
                break candidate;
            }
        };
        let event = DomainEvent::member(
            EventType::MemberWithdrawn,
            &member.member_id,
            "WITHDRAWN",
            at,
        );
        app.store
            .withdraw_member(&member.member_id, at, &event)
            .await
            .expect("fixture withdrawal");
        twin.names.add(&member.member_id, "expiring");
        twin.expiring = Some((member.member_id, at));
    }
}

// ---------------------------------------------------------------------------------------------
// moto's JSON APIs (SQS and EventBridge), for the queue that shows what reached the bus.

async fn moto_call(settings: &Settings, service: &str, target: &str, body: Value) -> Value {
    moto::call(&settings.moto, service, target, body).await
}

const RULE: &str = "emulator-comparison";

/// A queue receiving every event of the bus; returns its URL.
async fn bus_queue(settings: &Settings) -> String {
    moto::bus_queue(
        &settings.moto,
        &settings.bus,
        RULE,
        &json!({"source": ["cafe"]}),
        &format!("{}-events", settings.bus),
    )
    .await
}

async fn delete_bus(settings: &Settings) {
    moto_call(
        settings,
        "events",
        "AWSEvents.RemoveTargets",
        json!({"Rule": RULE, "EventBusName": settings.bus, "Ids": ["queue"]}),
    )
    .await;
    moto_call(
        settings,
        "events",
        "AWSEvents.DeleteRule",
        json!({"Name": RULE, "EventBusName": settings.bus}),
    )
    .await;
    moto_call(
        settings,
        "events",
        "AWSEvents.DeleteEventBus",
        json!({"Name": settings.bus}),
    )
    .await;
}

/// The envelopes delivered to `queue` since the last call: waits for `expected` of them, then
/// once more for strays.
async fn drain(settings: &Settings, queue: &str, expected: usize) -> Vec<Value> {
    moto::drain(&settings.moto, queue, expected).await
}

// ---------------------------------------------------------------------------------------------
// The harness: both sides, the comparison and its record.

struct Outcome {
    function: &'static str,
    case: String,
    /// An error answer: a non-2xx status, a Lambda error, or batch item failures.
    error: bool,
    in_process_ms: f64,
    emulator_ms: f64,
    difference: Option<String>,
}

struct Harness {
    settings: Settings,
    app: App,
    /// The Lambda context the in-process side is given; `None` (the default) is how the tests
    /// call the handlers. [`emulator_context`] for the cases that show what the emulator's
    /// deadline does.
    in_process_context: Option<lambda_http::Context>,
    publisher: EventBridgePublisher,
    client: reqwest::Client,
    queue: String,
    outcomes: Vec<Outcome>,
}

/// The two sides' raw answers of one case (for the ids a later case needs).
struct Answers {
    in_process: Value,
    emulator: Value,
}

impl Harness {
    fn sample(&self, function: &str) -> Value {
        read_json(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../events")
                .join(format!("{function}.json")),
        )
    }

    fn generated(&self, function: &str) -> Value {
        read_json(
            &self
                .settings
                .run_dir
                .join("events")
                .join(format!("{function}.json")),
        )
    }

    /// The in-process answer: the handler called directly, as the tests call it (no Lambda
    /// context, no deadline) unless `self.in_process_context` is set.
    async fn in_process(&self, function: &str, event: &Value) -> Value {
        let context = self.in_process_context.as_ref();
        // As the scheduled binaries' main does: a deadline that cannot be real is no deadline.
        let deadline = context
            .map(lambda_http::Context::deadline)
            .and_then(cafe::deadline::plausible);
        match function {
            "expire-withdrawals" | "payment-reconcile" | "expire-orders" => {
                let outcome = if function == "expire-withdrawals" {
                    expire_withdrawals::handle(event.clone(), deadline, &self.app)
                        .await
                        .map(|summary| json!(summary))
                } else if function == "expire-orders" {
                    expire_orders::handle(event.clone(), deadline, &self.app)
                        .await
                        .map(|sweep| json!(sweep))
                } else {
                    payment_reconcile::handle(event.clone(), deadline, &self.app)
                        .await
                        .map(|summary| json!(summary))
                };
                match outcome {
                    Ok(summary) => json!({"invokeStatus": 200, "payload": summary}),
                    // What the binary's `invoke` hands to lambda_runtime.
                    Err(e) => {
                        let diagnostic = lambda_http::lambda_runtime::Diagnostic::from(
                            cafe::scheduled::RunFailed::from(e),
                        );
                        json!({"invokeStatus": 500, "payload": diagnostic})
                    }
                }
            }
            "events-publisher" => {
                let stream_event = serde_json::from_value(event.clone())
                    .expect("lambda_runtime would parse this DynamoDB stream event");
                let response = events_publisher::handle(
                    stream_event,
                    &self.publisher,
                    &cafe::metrics::Metrics::disabled(),
                )
                .await;
                json!({"invokeStatus": 200, "payload": response})
            }
            "live-connect" | "live-disconnect" | "live-subscribe" => {
                let ws = serde_json::from_value(event.clone())
                    .expect("lambda_runtime would parse this WebSocket event");
                let payload = match function {
                    "live-connect" => live_connect::handle(ws, &self.app).await,
                    "live-disconnect" => live_disconnect::handle(ws, &self.app).await,
                    _ => live_subscribe::handle(ws, &self.app).await,
                };
                json!({"invokeStatus": 200, "payload": payload})
            }
            "live-sender" => {
                let bridged = serde_json::from_value(event.clone())
                    .expect("lambda_runtime would parse this EventBridge event");
                let aws = cafe::aws::Aws::load(None, DEPENDENCY_TIMEOUT).await;
                let api = live_sender::ManagementApi::new(
                    aws.api_gateway_management(&self.settings.live_endpoint),
                );
                match live_sender::handle(bridged, &self.app, Arc::new(api)).await {
                    Ok(summary) => json!({"invokeStatus": 200, "payload": summary}),
                    Err(error) => panic!("live-sender: the table could not be read: {error}"),
                }
            }
            _ if NON_HTTP_FUNCTIONS.contains(&function) => {
                panic!("{function}: no in-process call for it here: add one to lambda_emulator.rs")
            }
            _ => {
                let mut request = lambda_http::request::from_str(&event.to_string())
                    .unwrap_or_else(|e| panic!("{function}: lambda_http cannot parse: {e}"));
                if let Some(context) = context {
                    request = request.with_lambda_context(context.clone());
                }
                in_process_http_view(cafe_local::dispatch(function, request, &self.app).await)
            }
        }
    }

    async fn emulator(&self, function: &str, event: &Value) -> Value {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.settings.emulator
        );
        let response = self
            .client
            .post(&url)
            .body(event.to_string())
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{function}: the emulator did not answer: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.expect("the emulator's answer");
        let payload = body_value(&text);
        if NON_HTTP_FUNCTIONS.contains(&function) {
            json!({"invokeStatus": status, "payload": payload})
        } else {
            emulator_http_view(status, payload)
        }
    }

    /// Sends `events[0]` to the in-process handler (in-process twin) and `events[1]` to the binary
    /// through the emulator (emulator twin); records whether the normalised answers are equal and
    /// whether the in-process one has the `expected` status (HTTP status, or Lambda invoke status
    /// for the other functions). `deliveries` > 0: also compares what reached the bus.
    async fn case(
        &mut self,
        function: &'static str,
        case: &str,
        expected: u16,
        twins: &[Twin; 2],
        events: [Value; 2],
        deliveries: Option<usize>,
    ) -> Answers {
        let [in_event, emu_event] = events;
        let started = Instant::now();
        let mut in_view = self.in_process(function, &in_event).await;
        let in_process_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(expected_count) = deliveries {
            in_view["delivered"] = json!(drain(&self.settings, &self.queue, expected_count).await);
        }
        let started = Instant::now();
        let mut emu_view = self.emulator(function, &emu_event).await;
        let emulator_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(expected_count) = deliveries {
            emu_view["delivered"] = json!(drain(&self.settings, &self.queue, expected_count).await);
        }
        let got = status_of(&in_view).unwrap_or_else(|| {
            in_view["invokeStatus"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0)
        });
        let a = normalize(&in_view, &twins[0].names);
        let b = normalize(&emu_view, &twins[1].names);
        let mut difference = None;
        if a != b {
            difference = Some(format!(
                "in-process ({}):\n{}\nemulator ({}):\n{}",
                twins[0].side,
                serde_json::to_string_pretty(&a).unwrap_or_default(),
                twins[1].side,
                serde_json::to_string_pretty(&b).unwrap_or_default()
            ));
        } else if got != expected {
            difference = Some(format!(
                "both answered {got}, the case expects {expected}:\n{}",
                serde_json::to_string_pretty(&a).unwrap_or_default()
            ));
        }
        let error = !(200..300).contains(&got)
            // A WebSocket route's refusal is its answer's statusCode.
            || in_view["payload"]["statusCode"]
                .as_u64()
                .is_some_and(|status| status >= 400)
            || in_view["payload"]["batchItemFailures"]
                .as_array()
                .is_some_and(|failures| !failures.is_empty());
        let verdict = if difference.is_some() {
            "DIFFERS"
        } else {
            "same"
        };
        println!(
            "{verdict:>7}  {function:<19} {case:<44} {got:>3}  in-process {in_process_ms:>7.1} ms  emulator {emulator_ms:>7.1} ms"
        );
        if let Some(d) = &difference {
            println!("{d}");
        }
        self.outcomes.push(Outcome {
            function,
            case: case.to_owned(),
            error,
            in_process_ms,
            emulator_ms,
            difference,
        });
        Answers {
            in_process: in_view,
            emulator: emu_view,
        }
    }

    /// An HTTP case: `call(twin)` gives each side its invocation, on `template`.
    async fn http(
        &mut self,
        function: &'static str,
        case: &str,
        expected: u16,
        twins: &[Twin; 2],
        template: &Value,
        call: impl Fn(&Twin) -> Call,
    ) -> Answers {
        let events = [
            http_event(template, function, &call(&twins[0])),
            http_event(template, function, &call(&twins[1])),
        ];
        self.case(function, case, expected, twins, events, None)
            .await
    }

    /// An HTTP case sending the sample of events/ unchanged to both sides.
    async fn as_is(&mut self, function: &'static str, expected: u16, twins: &[Twin; 2]) {
        let sample = self.sample(function);
        self.case(
            function,
            "sample as is",
            expected,
            twins,
            [sample.clone(), sample],
            None,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// The cases, function by function.

async fn items(h: &mut Harness, twins: &[Twin; 2]) {
    for function in ["items-list", "items-get"] {
        let (sample, sam) = (h.sample(function), h.generated(function));
        let call = |_: &Twin| {
            if function == "items-get" {
                Call::new().param("itemId", COLA)
            } else {
                Call::new()
            }
        };
        h.http(function, "sample", 200, twins, &sample, call).await;
        h.http(function, "sam event", 200, twins, &sam, call).await;
    }
    let (sample, sam) = (h.sample("jwks-get"), h.generated("jwks-get"));
    h.http("jwks-get", "sample", 200, twins, &sample, |_| Call::new())
        .await;
    h.http("jwks-get", "sam event", 200, twins, &sam, |_| Call::new())
        .await;
    let sam = h.generated("items-get");
    h.http(
        "items-get",
        "sam: unknown item 404",
        404,
        twins,
        &sam,
        |_| Call::new().param("itemId", "01JC0FFEE00000000000000X99"),
    )
    .await;
    h.http(
        "items-get",
        "sam: malformed id 404",
        404,
        twins,
        &sam,
        |_| Call::new().param("itemId", "not-an-id"),
    )
    .await;
    let sam = h.generated("items-list");
    h.http(
        "items-list",
        "sam: declared text/plain, no body",
        200,
        twins,
        &sam,
        |_| Call::new().header("content-type", "text/plain"),
    )
    .await;
}

async fn sign_up_and_log_in(h: &mut Harness, twins: &mut [Twin; 2]) {
    let (sample, sam) = (h.sample("member-signup"), h.generated("member-signup"));
    for (i, twin) in twins.iter_mut().enumerate() {
        for n in 1..=2 {
            let email = format!("signup-{n}-{i}@emulator.example");
            twin.names.add(&email, &format!("signup-{n}-email"));
        }
    }
    let with_email = |n: u32, template: &Value| {
        let body = sample_body(template);
        move |t: &Twin| {
            let mut body = body.clone();
            body["email"] = json!(format!("signup-{n}-{}@emulator.example", t.index));
            Call::new().body(body)
        }
    };
    h.http(
        "member-signup",
        "sample: fresh email 201",
        201,
        twins,
        &sample,
        with_email(1, &sample),
    )
    .await;
    h.http(
        "member-signup",
        "sam: fresh email 201",
        201,
        twins,
        &sam,
        with_email(2, &sample),
    )
    .await;
    let body = sample_body(&sample);
    h.http(
        "member-signup",
        "sam: taken email 400ME000",
        400,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["email"] = json!(t.owner.email.to_uppercase());
            Call::new().body(body)
        },
    )
    .await;
    h.http(
        "member-signup",
        "sam: unknown field 400CO000",
        400,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["email"] = json!(format!("never-{}", t.owner.email));
            body["role"] = json!("ADMIN");
            Call::new().body(body)
        },
    )
    .await;

    let (sample, sam) = (h.sample("auth-login"), h.generated("auth-login"));
    let body = sample_body(&sample);
    let login = |password: &'static str| {
        let body = body.clone();
        move |t: &Twin| {
            let mut body = body.clone();
            body["email"] = json!(t.owner.email);
            if !password.is_empty() {
                body["password"] = json!(password);
            }
            Call::new().body(body)
        }
    };
    h.http(
        "auth-login",
        "sample: owner 200",
        200,
        twins,
        &sample,
        login(""),
    )
    .await;
    h.http("auth-login", "sam: owner 200", 200, twins, &sam, login(""))
        .await;
    h.http(
        "auth-login",
        "sam: wrong password 401ME000",
        401,
        twins,
        &sam,
        login("wrong horse battery"),
    )
    .await;
    h.as_is("auth-login", 401, twins).await;
}

async fn refresh(h: &mut Harness, twins: &[Twin; 2]) {
    let (sample, sam) = (h.sample("auth-refresh"), h.generated("auth-refresh"));
    let with = |token: String| Call::new().body(json!({ "refreshToken": token }));
    let answers = h
        .http(
            "auth-refresh",
            "sample: live token 200",
            200,
            twins,
            &sample,
            |t| with(t.owner.refresh.clone()),
        )
        .await;
    // Presented again at once (a second tab): the same pair, on both sides.
    let repeated = h
        .http(
            "auth-refresh",
            "sample: repeated within the grace 200",
            200,
            twins,
            &sample,
            |t| with(t.owner.refresh.clone()),
        )
        .await;
    for (first, again) in [
        (&answers.in_process, &repeated.in_process),
        (&answers.emulator, &repeated.emulator),
    ] {
        assert_eq!(
            first.pointer("/body/result"),
            again.pointer("/body/result"),
            "a repeat within the grace answers the same pair"
        );
    }
    // Each side's successor token, from its own answer.
    let successors = [
        text(&answers.in_process, "/body/result/refreshToken"),
        text(&answers.emulator, "/body/result/refreshToken"),
    ];
    h.http(
        "auth-refresh",
        "sam: the rotated token 200",
        200,
        twins,
        &sam,
        |t| with(successors[t.index].clone()),
    )
    .await;
    h.http(
        "auth-refresh",
        "sam: second family 200",
        200,
        twins,
        &sam,
        |t| with(t.refresh.clone()),
    )
    .await;
    // Past the grace window, the same token is reuse: the family is revoked.
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(REFRESH_GRACE_SECONDS * 1000 + 500).unwrap_or(2_500),
    ))
    .await;
    h.http(
        "auth-refresh",
        "sample: reused after the grace 401CO000",
        401,
        twins,
        &sample,
        |t| with(t.owner.refresh.clone()),
    )
    .await;
    h.as_is("auth-refresh", 401, twins).await;
}

async fn logout(h: &mut Harness, twins: &[Twin; 2]) {
    let sample = h.sample("auth-logout");
    let with = |token: String| Call::new().body(json!({ "refreshToken": token }));
    // The second family (already rotated by `refresh`): its family revoked, the owner's other
    // sessions untouched (no `everywhere`), so later cases keep their tokens.
    h.http(
        "auth-logout",
        "sample: the second family 200",
        200,
        twins,
        &sample,
        |t| with(t.refresh.clone()),
    )
    .await;
    h.http(
        "auth-logout",
        "sample: a malformed token 401CO000",
        401,
        twins,
        &sample,
        |_| with("not-a-refresh-token".into()),
    )
    .await;
    // The sample's own token was never issued.
    h.as_is("auth-logout", 401, twins).await;
}

async fn member_get(h: &mut Harness, twins: &[Twin; 2]) {
    let (sample, sam) = (h.sample("member-get"), h.generated("member-get"));
    let own = |t: &Twin| {
        Call::new()
            .param("memberId", &t.owner.member_id)
            .bearer(&t.owner.access)
    };
    h.http(
        "member-get",
        "sample: own profile 200",
        200,
        twins,
        &sample,
        own,
    )
    .await;
    h.http("member-get", "sam: own profile 200", 200, twins, &sam, own)
        .await;
    let others = [
        twins[1].owner.member_id.clone(),
        twins[0].owner.member_id.clone(),
    ];
    h.http(
        "member-get",
        "sam: the other twin's profile 403",
        403,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("memberId", &others[t.index])
                .bearer(&t.owner.access)
        },
    )
    .await;
    h.http("member-get", "sam: no token 401", 401, twins, &sam, |t| {
        Call::new().param("memberId", &t.owner.member_id)
    })
    .await;
    h.as_is("member-get", 401, twins).await;
}

async fn orders(h: &mut Harness, twins: &[Twin; 2]) {
    let (sample, sam) = (h.sample("order-create"), h.generated("order-create"));
    let body = sample_body(&sample);
    h.http("order-create", "sample 201", 201, twins, &sample, |t| {
        Call::new().bearer(&t.owner.access).body(body.clone())
    })
    .await;
    h.http("order-create", "sam 201", 201, twins, &sam, |t| {
        Call::new().bearer(&t.owner.access).body(body.clone())
    })
    .await;
    h.http(
        "order-create",
        "sam: more than the stock 400OR000",
        400,
        twins,
        &sam,
        |t| {
            Call::new()
                .bearer(&t.owner.access)
                .body(json!({"items": [{"itemId": COLA, "quantity": 1_000_000}]}))
        },
    )
    .await;
    h.http(
        "order-create",
        "sam: declared text/plain 400CO000",
        400,
        twins,
        &sam,
        |t| {
            Call::new()
                .bearer(&t.owner.access)
                .body(body.clone())
                .header("content-type", "text/plain")
        },
    )
    .await;
    h.as_is("order-create", 401, twins).await;

    let (sample, sam) = (h.sample("order-get"), h.generated("order-get"));
    let shown = |t: &Twin| {
        Call::new()
            .param("orderId", t.order("shown"))
            .bearer(&t.owner.access)
    };
    h.http(
        "order-get",
        "sample: paid order 200",
        200,
        twins,
        &sample,
        shown,
    )
    .await;
    h.http("order-get", "sam: paid order 200", 200, twins, &sam, shown)
        .await;
    let others = [
        twins[1].order("shown").to_owned(),
        twins[0].order("shown").to_owned(),
    ];
    h.http(
        "order-get",
        "sam: the other twin's order 403",
        403,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("orderId", &others[t.index])
                .bearer(&t.owner.access)
        },
    )
    .await;
    h.as_is("order-get", 401, twins).await;

    let (sample, sam) = (h.sample("order-list"), h.generated("order-list"));
    h.http(
        "order-list",
        "sample: limit=20 200",
        200,
        twins,
        &sample,
        |t| Call::new().query("limit", "20").bearer(&t.owner.access),
    )
    .await;
    let first = h
        .http("order-list", "sam: limit=3 200", 200, twins, &sam, |t| {
            Call::new().query("limit", "3").bearer(&t.owner.access)
        })
        .await;
    let cursors = [
        text(&first.in_process, "/body/result/nextCursor"),
        text(&first.emulator, "/body/result/nextCursor"),
    ];
    h.http(
        "order-list",
        "sam: limit=3 with the cursor 200",
        200,
        twins,
        &sam,
        |t| {
            Call::new()
                .query("limit", "3")
                .query("cursor", &cursors[t.index])
                .bearer(&t.owner.access)
        },
    )
    .await;
    h.http(
        "order-list",
        "sam: limit=0 400CO000",
        400,
        twins,
        &sam,
        |t| Call::new().query("limit", "0").bearer(&t.owner.access),
    )
    .await;
    h.as_is("order-list", 401, twins).await;
}

async fn payments(h: &mut Harness, twins: &[Twin; 2]) {
    let (sample, sam) = (h.sample("payment-create"), h.generated("payment-create"));
    let body = sample_body(&sample);
    let pay_sample = |t: &Twin| {
        let mut body = body.clone();
        body["orderId"] = json!(t.order("pay-sample"));
        Call::new().bearer(&t.owner.access).body(body)
    };
    h.http(
        "payment-create",
        "sample: pending order 200",
        200,
        twins,
        &sample,
        pay_sample,
    )
    .await;
    h.http(
        "payment-create",
        "sample again: replayed by its key 200",
        200,
        twins,
        &sample,
        pay_sample,
    )
    .await;
    h.http(
        "payment-create",
        "sample: same key, other body 409PA002",
        409,
        twins,
        &sample,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-sam"));
            Call::new().bearer(&t.owner.access).body(body)
        },
    )
    .await;
    h.http(
        "payment-create",
        "sam: pending order 200",
        200,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-sam"));
            Call::new().bearer(&t.owner.access).body(body)
        },
    )
    .await;
    h.http(
        "payment-create",
        "sam: paid order, no key 400OR001",
        400,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-sample"));
            Call::new().bearer(&t.owner.access).body(body)
        },
    )
    .await;
    h.http(
        "payment-create",
        "sam: parts not adding up 400PA000",
        400,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-mismatch"));
            body["payments"][1]["amount"] = json!(7000);
            Call::new().bearer(&t.owner.access).body(body)
        },
    )
    .await;
    h.http(
        "payment-create",
        "sample without its key, not a token 401CO000",
        401,
        twins,
        &sample,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-mismatch"));
            Call::new()
                .bearer("not-a-token")
                .body(body)
                .without_idempotency_key()
        },
    )
    .await;
    h.as_is("payment-create", 401, twins).await;
    // The in-process handler given the context the emulator gives the binary: its deadline
    // (1970) cannot be real, so both ignore it for the default budget and pay.
    h.in_process_context = Some(emulator_context());
    h.http(
        "payment-create",
        "sam, in-process given the emulator's deadline",
        200,
        twins,
        &sam,
        |t| {
            let mut body = body.clone();
            body["orderId"] = json!(t.order("pay-deadline"));
            Call::new().bearer(&t.owner.access).body(body)
        },
    )
    .await;
    h.in_process_context = None;
}

async fn cancels(h: &mut Harness, twins: &[Twin; 2]) {
    let (sample, sam) = (h.sample("order-cancel"), h.generated("order-cancel"));
    let cancel = |name: &'static str| {
        move |t: &Twin| {
            Call::new()
                .param("orderId", t.order(name))
                .bearer(&t.owner.access)
        }
    };
    h.http(
        "order-cancel",
        "sample: pending order 200",
        200,
        twins,
        &sample,
        cancel("cancel-pending"),
    )
    .await;
    // The paid fixture was charged by the in-process app's mock gateway, which lives in this
    // process: the binary's own mock gateway has no record of the charge, so its refund fails and
    // is left to reconciliation (its log says so) while the answer, which does not depend on the
    // refund's outcome, is the same.
    h.http(
        "order-cancel",
        "sam: paid order, refunded 200",
        200,
        twins,
        &sam,
        cancel("cancel-paid"),
    )
    .await;
    h.http(
        "order-cancel",
        "sam: cancelled again 400OR001",
        400,
        twins,
        &sam,
        cancel("cancel-pending"),
    )
    .await;
    h.as_is("order-cancel", 401, twins).await;
    // The cancelled paid order as the owner now sees it: refunds and timeline.
    let sam = h.generated("order-get");
    h.http(
        "order-get",
        "sam: the refunded order 200",
        200,
        twins,
        &sam,
        cancel("cancel-paid"),
    )
    .await;
}

async fn staff(h: &mut Harness, twins: &[Twin; 2]) {
    let role = "admin-member-role";
    let (sample, sam) = (h.sample(role), h.generated(role));
    h.http(
        role,
        "sample: an admin grants STAFF 200",
        200,
        twins,
        &sample,
        |t| {
            Call::new()
                .param("memberId", &t.promoted.member_id)
                .bearer(&t.admin.access)
                .body(sample_body(&sample))
        },
    )
    .await;
    h.http(
        role,
        "sam: a staff member is not an admin 403",
        403,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("memberId", &t.promoted.member_id)
                .bearer(&t.staff.access)
                .body(json!({"role": "ADMIN"}))
        },
    )
    .await;

    // Before either twin adds another item: both see the same catalogue.
    let items = "admin-item-list";
    let (sample, sam) = (h.sample(items), h.generated(items));
    h.http(
        items,
        "sample-shaped: every item with its version 200",
        200,
        twins,
        &sample,
        |t| Call::new().bearer(&t.staff.access),
    )
    .await;
    h.http(items, "sam: a customer 403", 403, twins, &sam, |t| {
        Call::new().bearer(&t.owner.access)
    })
    .await;

    let create = "admin-item-create";
    let (sample, sam) = (h.sample(create), h.generated(create));
    h.http(
        create,
        "sample: staff add an item 201",
        201,
        twins,
        &sample,
        |t| {
            Call::new()
                .bearer(&t.staff.access)
                .body(sample_body(&sample))
        },
    )
    .await;
    h.http(create, "sam: a customer 403", 403, twins, &sam, |t| {
        Call::new()
            .bearer(&t.owner.access)
            .body(json!({"name": "Tea", "price": 3_000, "stock": 5}))
    })
    .await;

    let update = "admin-item-update";
    let (sample, sam) = (h.sample(update), h.generated(update));
    h.http(
        update,
        "sample: a new price from version 0 200",
        200,
        twins,
        &sample,
        |t| {
            Call::new()
                .param("itemId", &t.item)
                .bearer(&t.staff.access)
                .body(sample_body(&sample))
        },
    )
    .await;
    h.http(
        update,
        "sam: the same version again 409IT000",
        409,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("itemId", &t.item)
                .bearer(&t.staff.access)
                .body(json!({"version": 0, "price": 1_900}))
        },
    )
    .await;

    let stock = "admin-item-stock";
    let (sample, sam) = (h.sample(stock), h.generated(stock));
    h.http(stock, "sample-shaped: a delivery from version 1 200", 200, twins, &sample, |t| {
        Call::new()
            .param("itemId", &t.item)
            .bearer(&t.staff.access)
            .body(json!({"mode": "ADD", "quantity": 20, "reason": "Morning delivery", "version": 1}))
    })
    .await;
    h.http(stock, "sam: below zero 400OR000", 400, twins, &sam, |t| {
        Call::new()
            .param("itemId", &t.item)
            .bearer(&t.staff.access)
            .body(json!({"mode": "ADD", "quantity": -1_000, "reason": "breakage", "version": 2}))
    })
    .await;

    let list = "admin-order-list";
    let (sample, sam) = (h.sample(list), h.generated(list));
    // The table is shared by both twins: the READY queue is empty for both until the end.
    h.http(
        list,
        "sample-shaped: the READY queue 200",
        200,
        twins,
        &sample,
        |t| Call::new().query("status", "READY").bearer(&t.staff.access),
    )
    .await;
    h.http(list, "sam: an unknown status 400", 400, twins, &sam, |t| {
        Call::new()
            .query("status", "CANCELLED")
            .bearer(&t.staff.access)
    })
    .await;

    let step = "admin-order-status";
    let (sample, sam) = (h.sample(step), h.generated(step));
    h.http(
        step,
        "sample: a paid order PREPARING 200",
        200,
        twins,
        &sample,
        |t| {
            Call::new()
                .param("orderId", t.order("fulfil"))
                .bearer(&t.staff.access)
                .body(sample_body(&sample))
        },
    )
    .await;
    h.http(
        step,
        "sam: a jump to PICKED_UP 400OR001",
        400,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("orderId", t.order("fulfil"))
                .bearer(&t.staff.access)
                .body(json!({"status": "PICKED_UP"}))
        },
    )
    .await;
    h.http(step, "sam: a customer 403", 403, twins, &sam, |t| {
        Call::new()
            .param("orderId", t.order("fulfil"))
            .bearer(&t.owner.access)
            .body(json!({"status": "READY"}))
    })
    .await;
}

/// The floor (docs/floor.md): the public shop, staff closing and opening it, the sweep.
async fn floor(h: &mut Harness, twins: &[Twin; 2]) {
    let get = "shop-get";
    let (sample, sam) = (h.sample(get), h.generated(get));
    h.http(get, "sample: the shop 200", 200, twins, &sample, |_| {
        Call::new()
    })
    .await;
    h.http(get, "sam event", 200, twins, &sam, |_| Call::new())
        .await;

    let board = "shop-board";
    let (sample, sam) = (h.sample(board), h.generated(board));
    h.http(board, "sample: the board 200", 200, twins, &sample, |_| {
        Call::new()
    })
    .await;
    h.http(board, "sam event", 200, twins, &sam, |_| Call::new())
        .await;

    let set = "admin-shop-update";
    let (sample, sam) = (h.sample(set), h.generated(set));
    h.http(
        set,
        "sample: staff close the shop 200",
        200,
        twins,
        &sample,
        |t| {
            Call::new()
                .bearer(&t.staff.access)
                .body(sample_body(&sample))
        },
    )
    .await;
    // Open again at once: the cases after this one order and pay.
    h.http(set, "sam: staff open it 200", 200, twins, &sam, |t| {
        Call::new()
            .bearer(&t.staff.access)
            .body(json!({"open": true}))
    })
    .await;
    h.http(set, "sam: a customer 403", 403, twins, &sam, |t| {
        Call::new()
            .bearer(&t.owner.access)
            .body(json!({"open": false}))
    })
    .await;
    h.http(set, "sam: a message too long 400", 400, twins, &sam, |t| {
        Call::new()
            .bearer(&t.staff.access)
            .body(json!({"open": false, "message": "m".repeat(201)}))
    })
    .await;

    let sweep = "expire-orders";
    let (sample, sam) = (h.sample(sweep), h.generated(sweep));
    // The sample's `now` is long before this run's orders: nothing is due.
    h.case(
        sweep,
        "sample: nothing due at its now",
        200,
        twins,
        [sample.clone(), sample],
        None,
    )
    .await;
    let mut bad = sam.clone();
    bad["detail"]["now"] = json!("yesterday");
    h.case(
        sweep,
        "sam, detail.now not RFC 3339: Lambda error",
        500,
        twins,
        [bad.clone(), bad],
        None,
    )
    .await;
}

async fn withdraw_and_restore(h: &mut Harness, twins: &[Twin; 2]) {
    for (function, verb) in [
        ("member-withdraw", "withdraw"),
        ("member-restore", "restore"),
    ] {
        let (sample, sam) = (h.sample(function), h.generated(function));
        let leaver = |n: usize| {
            move |t: &Twin| {
                Call::new()
                    .param("memberId", &t.leavers[n].member_id)
                    .bearer(&t.leavers[n].access)
            }
        };
        h.http(
            function,
            &format!("sample: {verb} 200"),
            200,
            twins,
            &sample,
            leaver(0),
        )
        .await;
        h.http(
            function,
            &format!("sam: {verb} 200"),
            200,
            twins,
            &sam,
            leaver(1),
        )
        .await;
        h.as_is(function, 401, twins).await;
    }
    let sam = h.generated("member-restore");
    h.http(
        "member-restore",
        "sam: a member in service 400ME002",
        400,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("memberId", &t.owner.member_id)
                .bearer(&t.owner.access)
        },
    )
    .await;
    let sam = h.generated("member-withdraw");
    h.http(
        "member-withdraw",
        "sam: someone else 403",
        403,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("memberId", &t.leavers[0].member_id)
                .bearer(&t.owner.access)
        },
    )
    .await;
    // The withdrawal ended the sessions from before it: once restored, the token the first
    // leaver withdrew and restored with is refused (docs/auth.md, "Sessions").
    let sample = h.sample("member-withdraw");
    h.http(
        "member-withdraw",
        "sam: the token from before the withdrawal, once restored 401",
        401,
        twins,
        &sam,
        |t| {
            Call::new()
                .param("memberId", &t.leavers[0].member_id)
                .bearer(&t.leavers[0].access)
        },
    )
    .await;
    // A new log-in starts a session that carries on. Withdraw the first leaver for good with it:
    // a second withdrawal is refused.
    let mut fresh = Vec::new();
    for twin in twins {
        fresh.push(testing::log_in(&h.app, &twin.leavers[0].email).await);
    }
    let first = |t: &Twin| {
        Call::new()
            .param("memberId", &t.leavers[0].member_id)
            .bearer(&fresh[t.index])
    };
    h.http(
        "member-withdraw",
        "sample: withdraw again 200",
        200,
        twins,
        &sample,
        first,
    )
    .await;
    h.http(
        "member-withdraw",
        "sam: already withdrawn 400ME001",
        400,
        twins,
        &sam,
        first,
    )
    .await;
    let sam = h.generated("member-get");
    h.http(
        "member-get",
        "sam: a withdrawn member's profile 200",
        200,
        twins,
        &sam,
        first,
    )
    .await;
}

async fn expiry(h: &mut Harness, twins: &[Twin; 2]) {
    let function = "expire-withdrawals";
    let (sample, sam) = (h.sample(function), h.generated(function));
    // The sample with its `now` moved to 30 days after each twin's fixture withdrawal.
    let at = |t: &Twin| {
        let (_, withdrawn_at) = t.expiring.as_ref().expect("an expiring fixture");
        cafe::clock::rfc3339(*withdrawn_at + ChronoDuration::days(30))
    };
    let mut due = [sample.clone(), sample.clone()];
    for (event, twin) in due.iter_mut().zip(twins.iter()) {
        event["now"] = json!(at(twin));
    }
    // First, the in-process handler given the emulator's deadline: it cannot be real (1970), so
    // both sides ignore it and run to completion.
    h.in_process_context = Some(emulator_context());
    h.case(
        function,
        "sample, in-process given the emulator's deadline",
        200,
        twins,
        due.clone(),
        None,
    )
    .await;
    h.in_process_context = None;
    // The scheduled event as EventBridge sends it: no `now`, the clock decides; nothing of this
    // run is 30 days old yet.
    h.case(
        function,
        "sam scheduled event: nothing due",
        200,
        twins,
        [sam.clone(), sam.clone()],
        None,
    )
    .await;
    h.case(
        function,
        "sample, now = withdrawal + 30 days: one ended",
        200,
        twins,
        due,
        None,
    )
    .await;
    let mut bad = sam.clone();
    bad["detail"]["now"] = json!("yesterday");
    h.case(
        function,
        "sam, detail.now not RFC 3339: Lambda error",
        500,
        twins,
        [bad.clone(), bad],
        None,
    )
    .await;
}

async fn reconcile(h: &mut Harness, twins: &[Twin; 2]) {
    let function = "payment-reconcile";
    let (sample, sam) = (h.sample(function), h.generated(function));
    h.in_process_context = Some(emulator_context());
    h.case(
        function,
        "sam, in-process given the emulator's deadline",
        200,
        twins,
        [sam.clone(), sam.clone()],
        None,
    )
    .await;
    h.in_process_context = None;
    h.case(
        function,
        "sam scheduled event",
        200,
        twins,
        [sam.clone(), sam.clone()],
        None,
    )
    .await;
    h.case(
        function,
        "sample (now in the past): nothing due",
        200,
        twins,
        [sample.clone(), sample],
        None,
    )
    .await;
    let mut bad = sam.clone();
    bad["now"] = json!(42);
    h.case(
        function,
        "sam, now not a string: Lambda error",
        500,
        twins,
        [bad.clone(), bad],
        None,
    )
    .await;
}

async fn publisher(h: &mut Harness, twins: &[Twin; 2]) {
    let function = "events-publisher";
    let (sample, sam) = (h.sample(function), h.generated(function));
    h.case(
        function,
        "sample: one outbox insert published",
        200,
        twins,
        [sample.clone(), sample.clone()],
        Some(1),
    )
    .await;
    // The sam batch (INSERT, MODIFY, REMOVE of another table) with its INSERT made the outbox row
    // of each twin's own event.
    let at = Utc::now().trunc_subsecs(3);
    let events = [&twins[0], &twins[1]].map(|t| {
        let event = DomainEvent::member(
            EventType::MemberWithdrawn,
            &t.leavers[1].member_id,
            "WITHDRAWN",
            at,
        );
        let mut batch = sam.clone();
        batch["Records"][0] = outbox_record(batch["Records"][0].clone(), &event);
        batch
    });
    h.case(
        function,
        "sam batch with the twin's outbox insert",
        200,
        twins,
        events,
        Some(1),
    )
    .await;
    h.case(
        function,
        "sam batch unchanged: nothing to publish",
        200,
        twins,
        [sam.clone(), sam],
        Some(0),
    )
    .await;
    // Last: the bus is deleted, so every record from the outbox insert on is reported failed.
    delete_bus(&h.settings).await;
    h.case(
        function,
        "sample, bus deleted: batch item failures",
        200,
        twins,
        [sample.clone(), sample],
        None,
    )
    .await;
}

/// The live channel: a ticket (`POST /live/ticket`), `$connect` redeeming it (and refusing the
/// sample's never-issued one), `subscribe` and `$default`, the sender meeting a 410 from the
/// stub management endpoint, `$disconnect`.
async fn live(h: &mut Harness, twins: &mut [Twin; 2]) {
    let ticket = "live-ticket";
    let (sample, sam) = (h.sample(ticket), h.generated(ticket));
    h.http(
        ticket,
        "sample-shaped: a ticket 200",
        200,
        twins,
        &sample,
        |t| Call::new().bearer(&t.owner.access),
    )
    .await;
    h.http(ticket, "sam: no token 401", 401, twins, &sam, |_| {
        Call::new()
    })
    .await;

    // Each twin's own connection, on a ticket of its own (issued in-process: the table is one).
    let mut tickets = Vec::new();
    for twin in twins.iter_mut() {
        let connection = format!("live-{}-{}", twin.side, ulid::Ulid::new());
        twin.names.add(&connection, "connection");
        let (status, body) = testing::call(
            &h.app,
            testing::request("POST", "/live/ticket")
                .bearer(&twin.owner.access)
                .build(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let issued = body["result"]["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
        tickets.push((connection, issued));
    }
    let connect = "live-connect";
    let sample = h.sample(connect);
    let events = [0, 1].map(|i| {
        let mut event = sample.clone();
        event["requestContext"]["connectionId"] = json!(tickets[i].0);
        event["queryStringParameters"] = json!({"ticket": tickets[i].1});
        event["multiValueQueryStringParameters"] = json!({"ticket": [tickets[i].1]});
        event
    });
    h.case(
        connect,
        "a fresh ticket: connected",
        200,
        twins,
        events.clone(),
        None,
    )
    .await;
    let answers = h
        .case(
            connect,
            "the same ticket again: 401",
            200,
            twins,
            events,
            None,
        )
        .await;
    assert_eq!(answers.in_process["payload"]["statusCode"], 401);
    h.case(
        connect,
        "sample as is (never issued): 401",
        200,
        twins,
        [sample.clone(), sample],
        None,
    )
    .await;

    let subscribe = "live-subscribe";
    let sample = h.sample(subscribe);
    let frames = |body: &dyn Fn(&Twin) -> Value| {
        [0, 1].map(|i| {
            let mut event = sample.clone();
            event["requestContext"]["connectionId"] = json!(tickets[i].0);
            event["body"] = json!(body(&twins[i]).to_string());
            event
        })
    };
    let own =
        frames(&|t| json!({"action": "subscribe", "topic": "order", "orderId": t.order("fulfil")}));
    h.case(
        subscribe,
        "its own order: subscribed",
        200,
        twins,
        own,
        None,
    )
    .await;
    let other = frames(&|t| {
        let theirs = &twins[1 - t.index];
        json!({"action": "subscribe", "topic": "order", "orderId": theirs.order("fulfil")})
    });
    h.case(
        subscribe,
        "the other twin's order: 403 frame",
        200,
        twins,
        other,
        None,
    )
    .await;
    let ping = frames(&|_| json!({"action": "ping"}));
    h.case(subscribe, "$default ping: pong", 200, twins, ping, None)
        .await;
    let mut orphan = h.sample(subscribe);
    if let Some(context) = orphan["requestContext"].as_object_mut() {
        context.remove("connectionId");
    }
    h.case(
        subscribe,
        "no connection id: 400",
        200,
        twins,
        [orphan.clone(), orphan],
        None,
    )
    .await;

    // The order's next step, as the bus's rule brings it (the generated event is a scheduled
    // one: EventBridge's envelope, given the cafe's source, type and detail): posted to the
    // twin's connection, which the stub answers 410, so the connection is forgotten.
    let sender = "live-sender";
    let sam = h.generated(sender);
    let at = Utc::now().trunc_subsecs(3);
    let events = [&twins[0], &twins[1]].map(|t| {
        let event = DomainEvent::order(
            EventType::OrderFulfilmentAdvanced,
            t.order("fulfil"),
            &t.owner.member_id,
            "PREPARING",
            28_000,
            at,
        );
        let mut bridged = sam.clone();
        let bus_event = serde_json::to_value(cafe::events::eventbridge::BusEvent::of(&event))
            .expect("a bus event serialises");
        for field in ["source", "detail-type", "detail"] {
            bridged[field] = bus_event[field].clone();
        }
        bridged
    });
    h.case(
        sender,
        "the twin's order: 410, forgotten",
        200,
        twins,
        events,
        None,
    )
    .await;
    for (connection, _) in &tickets {
        let grant = cafe::store::LiveStore::get_live_connection(
            h.app.store.as_ref(),
            connection,
            Utc::now(),
        )
        .await
        .expect("read");
        assert_eq!(grant, None, "{connection} was not forgotten on 410");
    }
    let sample = h.sample(sender);
    h.case(
        sender,
        "sample as is: an unknown order, nothing to post",
        200,
        twins,
        [sample.clone(), sample],
        None,
    )
    .await;

    let disconnect = "live-disconnect";
    let sample = h.sample(disconnect);
    let events = [0, 1].map(|i| {
        let mut event = sample.clone();
        event["requestContext"]["connectionId"] = json!(tickets[i].0);
        event
    });
    h.case(disconnect, "its connection: 200", 200, twins, events, None)
        .await;
    let mut orphan = sample.clone();
    if let Some(context) = orphan["requestContext"].as_object_mut() {
        context.remove("connectionId");
    }
    h.case(
        disconnect,
        "no connection id: 400",
        200,
        twins,
        [orphan.clone(), orphan],
        None,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------

async fn build_harness(settings: Settings) -> Harness {
    let aws = cafe::aws::Aws::load(Some(&settings.moto), DEPENDENCY_TIMEOUT).await;
    let client = aws.dynamodb();
    if !table::table_exists(&client, &settings.table)
        .await
        .expect("describe table")
    {
        table::create_table_with(&client, &settings.table, false)
            .await
            .expect("create the table");
    }
    let mut config = cafe::testing::test_config();
    config.backend = Backend::Aws;
    // CAFE_ENV=development, as the binaries run.
    config.production = false;
    // The development keyset, which scripts/emulator.sh gives the binaries (`cafe-keys development`).
    config.refresh_reuse_grace = ChronoDuration::seconds(REFRESH_GRACE_SECONDS);
    config.table_name = settings.table.clone();
    config.dynamodb_endpoint = Some(settings.moto.clone());
    config.redis_url = Some(settings.redis.clone());
    config.event_bus_name = settings.bus.clone();
    config.dependency_timeout = DEPENDENCY_TIMEOUT;
    let store = Arc::new(DynamoStore::new(
        client,
        settings.table.clone(),
        config.history_retention_days,
    ));
    // The seeded items, with stock for every fixture and case of both twins.
    for item in cafe::domain::item::seed_items() {
        store
            .put_item(&Item {
                stock: 1_000,
                ..item
            })
            .await
            .expect("seed an item");
    }
    let lock = Arc::new(
        RedisLock::new(&settings.redis, config.lock, config.dependency_timeout)
            .expect("redis lock"),
    );
    let app = App::with_store(config, Arc::new(SystemClock), store, lock).expect("app");
    let publisher = EventBridgePublisher::from_aws(&aws, settings.bus.clone());
    let queue = bus_queue(&settings).await;
    Harness {
        settings,
        app,
        in_process_context: None,
        publisher,
        client: reqwest::Client::new(),
        queue,
        outcomes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by scripts/emulator.sh, which starts the emulator and the release binaries"]
async fn release_binaries_under_the_emulator_answer_like_the_handlers() {
    let settings = Settings::from_env();
    let mut h = build_harness(settings).await;
    let mut twins = [
        make_twin(&h.app, 0, "in-process").await,
        make_twin(&h.app, 1, "emulator").await,
    ];
    add_expiring(&h.app, &mut twins).await;
    // Staff see every item, the other twin's inactive fixture item too (`GET /admin/items`): each
    // side names both fixture items alike, so the catalogue compares equal.
    let fixture_items: Vec<(String, &str)> =
        twins.iter().map(|t| (t.item.clone(), t.side)).collect();
    for twin in &mut twins {
        for (item, side) in &fixture_items {
            if *item != twin.item {
                twin.names.add(item, "item");
                twin.names.add(&format!("Latte {side}"), "item-name");
            }
        }
    }

    println!(
        "\n{:>7}  {:<19} {:<44} {:>3}",
        "", "function", "case", "got"
    );
    items(&mut h, &twins).await;
    sign_up_and_log_in(&mut h, &mut twins).await;
    refresh(&mut h, &twins).await;
    logout(&mut h, &twins).await;
    member_get(&mut h, &twins).await;
    orders(&mut h, &twins).await;
    payments(&mut h, &twins).await;
    cancels(&mut h, &twins).await;
    staff(&mut h, &twins).await;
    floor(&mut h, &twins).await;
    withdraw_and_restore(&mut h, &twins).await;
    expiry(&mut h, &twins).await;
    reconcile(&mut h, &twins).await;
    publisher(&mut h, &twins).await;
    live(&mut h, &mut twins).await;

    // Every function has a success answer and an error answer that were compared.
    let mut report = String::new();
    let mut failing: Vec<&str> = Vec::new();
    let all: Vec<&str> = ROUTES
        .iter()
        .map(|r| r.function)
        .chain(NON_HTTP_FUNCTIONS.iter().copied())
        .collect();
    for function in &all {
        let mine: Vec<&Outcome> = h
            .outcomes
            .iter()
            .filter(|o| o.function == *function)
            .collect();
        let success = mine.iter().any(|o| !o.error);
        let error = mine.iter().any(|o| o.error) || NO_ERROR_ANSWER.contains(function);
        let differing: Vec<&&Outcome> = mine.iter().filter(|o| o.difference.is_some()).collect();
        let (in_ms, emu_ms) = mine.iter().fold((0.0, 0.0), |(a, b), o| {
            (a + o.in_process_ms, b + o.emulator_ms)
        });
        let _ = writeln!(
            report,
            "{function:<19} {} cases, {} differ; success {success}, error {error}; in-process {in_ms:.0} ms, emulator {emu_ms:.0} ms",
            mine.len(),
            differing.len()
        );
        for o in &differing {
            let _ = writeln!(report, "    differs: {}", o.case);
        }
        if !differing.is_empty() || !success || !error {
            failing.push(function);
        }
    }
    println!("\n{report}");
    let failures_file = h.settings.run_dir.join("failures.txt");
    std::fs::write(&failures_file, failing.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", failures_file.display()));
    assert!(
        failing.is_empty(),
        "the emulator and the in-process handlers answer differently for: {failing:?} (see the report above)"
    );
}
