//! Property tests over the request bodies of every endpoint that takes one: arbitrary JSON
//! documents, and valid bodies put through random mutations (fields removed, replaced by
//! arbitrary values, added; text truncated or a byte inserted).
//!
//! Properties, for every generated body:
//! - never a 5xx;
//! - a 4xx is the failure envelope with one of the endpoint's contract codes, and nothing stored
//!   changed (members, orders, payments, history, stock, events, gateway ledger);
//! - a 2xx only for a body that satisfies the request schema of `docs/openapi.yaml` (the spec is
//!   the oracle: the service must not accept what the contract forbids).

mod common;

use common::{BOOK, COLA, World, raw};
use jsonschema::{Draft, Registry, Validator};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Map, Value, json};

struct Endpoint {
    template: &'static str,
    authorized: bool,
    /// The schema of its body in the spec.
    schema: &'static str,
    codes: &'static [&'static str],
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        template: "/member",
        authorized: false,
        schema: "SignUpRequest",
        codes: &["400CO000", "400ME000", "413CO000"],
    },
    Endpoint {
        template: "/auth/login",
        authorized: false,
        schema: "LoginRequest",
        codes: &["400CO000", "401ME000", "413CO000"],
    },
    Endpoint {
        template: "/auth/refresh",
        authorized: false,
        schema: "RefreshRequest",
        codes: &["400CO000", "401CO000", "413CO000"],
    },
    Endpoint {
        template: "/order",
        authorized: true,
        schema: "CreateOrderRequest",
        codes: &["400CO000", "400OR000", "404CO000", "413CO000"],
    },
    Endpoint {
        template: "/payment",
        authorized: true,
        schema: "PaymentRequest",
        codes: &[
            "400CO000", "400OR000", "400OR001", "400PA000", "403CO000", "404CO000", "413CO000",
        ],
    },
];

fn valid_body(w: &World, template: &str) -> Value {
    match template {
        "/member" => json!({
            "name": "Prop Test", "email": "prop@cafe.example", "phoneNumber": "010-1234-5678",
            "gender": "FEMALE", "birth": "1990-01-01", "password": "prop-password",
        }),
        "/auth/login" => json!({"email": w.a.email, "password": cafe_local::testing::PASSWORD}),
        "/auth/refresh" => json!({"refreshToken": "A".repeat(43)}),
        "/order" => {
            json!({"items": [{"itemId": COLA, "quantity": 1}, {"itemId": BOOK, "quantity": 2}]})
        }
        _ => {
            json!({"orderId": w.a_pending, "payments": [{"amount": 1000, "type": "CARD"}, {"amount": 500, "type": "POINT"}]})
        }
    }
}

fn spec_validators() -> Vec<Validator> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("spec");
    let doc: Value = serde_yaml::from_str(&text).expect("spec YAML");
    let registry = Registry::new()
        .draft(Draft::Draft202012)
        .add("urn:cafe:openapi", doc)
        .expect("resource")
        .prepare()
        .expect("registry");
    ENDPOINTS
        .iter()
        .map(|e| {
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .with_registry(&registry)
                .should_validate_formats(true)
                .build(
                    &json!({"$ref": format!("urn:cafe:openapi#/components/schemas/{}", e.schema)}),
                )
                .expect("request schema")
        })
        .collect()
}

const FIELD_NAMES: &[&str] = &[
    "name",
    "email",
    "phoneNumber",
    "gender",
    "birth",
    "password",
    "refreshToken",
    "items",
    "itemId",
    "quantity",
    "orderId",
    "payments",
    "amount",
    "type",
    "__proto__",
    "",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e30f64..1e30).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "CARD",
            "POINT",
            "MALE",
            "FEMALE",
            "010-1234-5678",
            "1990-01-01",
            COLA,
            BOOK,
            "",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Replace(usize, Value),
    Add(usize, String, Value),
    Truncate(usize),
    Insert(usize, u8),
}

fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (any::<usize>(), arb_key(), arb_json()).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ];
    prop::collection::vec(one, 1..4)
}

/// JSON pointers of every node below the root.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_at = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(child_at.clone());
                pointers(child, child_at, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let child_at = format!("{at}/{index}");
                out.push(child_at.clone());
                pointers(child, child_at, out);
            }
        }
        _ => {}
    }
}

fn remove(body: &mut Value, pointer: &str) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer");
    let last = last.replace("~1", "/").replace("~0", "~");
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Some(index) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// Applies `mutations` to `valid`: the body bytes, and the parsed document if still JSON.
fn mutate(valid: &Value, mutations: &[Mutation]) -> (Vec<u8>, Option<Value>) {
    let mut body = valid.clone();
    let mut text: Option<Vec<u8>> = None;
    for mutation in mutations {
        let mut paths = Vec::new();
        pointers(&body, String::new(), &mut paths);
        let pick = |i: usize| paths.get(i % paths.len().max(1)).cloned();
        match (mutation, &mut text) {
            (Mutation::Remove(i), None) => {
                if let Some(p) = pick(*i) {
                    remove(&mut body, &p);
                }
            }
            (Mutation::Replace(i, value), None) => {
                if let Some(slot) = pick(*i).and_then(|p| body.pointer_mut(&p)) {
                    *slot = value.clone();
                }
            }
            (Mutation::Add(i, key, value), None) => {
                let target = pick(*i).unwrap_or_default();
                match body.pointer_mut(&target) {
                    Some(Value::Object(map)) => {
                        map.insert(key.clone(), value.clone());
                    }
                    _ => {
                        if let Value::Object(map) = &mut body {
                            map.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            (Mutation::Truncate(n), _) => {
                let bytes = text.get_or_insert_with(|| body.to_string().into_bytes());
                let keep = n % bytes.len().max(1);
                bytes.truncate(keep);
            }
            (Mutation::Insert(at, byte), _) => {
                let bytes = text.get_or_insert_with(|| body.to_string().into_bytes());
                let at = at % (bytes.len() + 1);
                bytes.insert(at, *byte);
            }
            // JSON-level changes after the text was damaged would hide the damage: skip them.
            (_, Some(_)) => {}
        }
    }
    match text {
        None => (body.to_string().into_bytes(), Some(body)),
        Some(bytes) => {
            let parsed = serde_json::from_slice(&bytes).ok();
            (bytes, parsed)
        }
    }
}

/// Sends `body` to `endpoint` and checks the three properties.
async fn check(
    w: &World,
    endpoint: &Endpoint,
    schema: &Validator,
    body: Vec<u8>,
    parsed: Option<Value>,
) -> Result<(), TestCaseError> {
    let mut req = raw("POST", endpoint.template)
        .bytes(&body)
        .header("content-type", "application/json");
    if endpoint.authorized {
        req = req.bearer(&w.a.access);
    }
    let before = w.snapshot().await;
    let answer = w.send(req).await;
    let after = w.snapshot().await;
    let shown = String::from_utf8_lossy(&body);
    prop_assert!(
        answer.status < 500,
        "{} {shown} → {} {:?}",
        endpoint.template,
        answer.status,
        answer.json
    );
    if answer.status >= 400 {
        let problem = answer.check_failure(endpoint.codes);
        prop_assert!(
            problem.is_none(),
            "{} {shown} → {problem:?}",
            endpoint.template
        );
        prop_assert!(
            before == after,
            "{} {shown} → {} but changed stored {}",
            endpoint.template,
            answer.status,
            before.diff(&after)
        );
    } else {
        let valid = parsed.as_ref().is_some_and(|v| schema.is_valid(v));
        prop_assert!(
            valid,
            "{} accepted a body the spec forbids: {shown} → {} {:?}",
            endpoint.template,
            answer.status,
            answer.json
        );
    }
    Ok(())
}

/// Deterministic by default so that CI is reproducible; `CAFE_PROPTEST_RANDOM=1` explores with a
/// fresh seed each run.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        // Keep failures in the report, not in files beside the sources.
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("CAFE_PROPTEST_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn run_mutations(index: usize) {
    let rt = runtime();
    let w = rt.block_on(World::new());
    let schemas = spec_validators();
    let endpoint = &ENDPOINTS[index];
    let valid = valid_body(&w, endpoint.template);
    let result = runner(160).run(&arb_mutations(), |mutations| {
        let (body, parsed) = mutate(&valid, &mutations);
        rt.block_on(check(&w, endpoint, &schemas[index], body, parsed))
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn mutated_sign_up_bodies() {
    run_mutations(0);
}

#[test]
fn mutated_login_bodies() {
    run_mutations(1);
}

#[test]
fn mutated_refresh_bodies() {
    run_mutations(2);
}

#[test]
fn mutated_order_bodies() {
    run_mutations(3);
}

#[test]
fn mutated_payment_bodies() {
    run_mutations(4);
}

#[test]
fn arbitrary_json_on_every_body_endpoint() {
    let rt = runtime();
    let w = rt.block_on(World::new());
    let schemas = spec_validators();
    let strategy = (0..ENDPOINTS.len(), arb_json());
    let result = runner(400).run(&strategy, |(index, document)| {
        let body = document.to_string().into_bytes();
        rt.block_on(check(
            &w,
            &ENDPOINTS[index],
            &schemas[index],
            body,
            Some(document),
        ))
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
