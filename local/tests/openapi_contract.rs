//! `docs/openapi.yaml` against the code: the route table and the spec list the same operations,
//! every example in the spec validates against its schema (JSON Schema 2020-12, formats on), the
//! failure codes the spec names are exactly those `cafe::Error` produces, and each response's
//! codes start with its status.

use cafe::Error;
use cafe::routes::ROUTES;
use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const SPEC_URI: &str = "urn:cafe:openapi";
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is valid YAML")
}

/// A validator for the schema at `pointer` inside `doc`, with `$ref`s resolved within `doc`.
fn validator_at(registry: &Registry, pointer: &str) -> Validator {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .should_validate_formats(true)
        .build(&json!({ "$ref": format!("{SPEC_URI}#{}", fragment(pointer)) }))
        .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"))
}

/// A JSON pointer as a URI fragment: `{` and `}` of path templates are not allowed there.
fn fragment(pointer: &str) -> String {
    pointer
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'~' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn registry(doc: &Value) -> Registry<'static> {
    Registry::new()
        .draft(Draft::Draft202012)
        .add(SPEC_URI, doc.clone())
        .expect("spec resource")
        .prepare()
        .expect("spec registry")
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Follows a local `#/...` reference.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').expect("local reference");
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

/// One example and the pointer of the schema it must satisfy.
struct Example {
    at: String,
    schema: String,
    value: Value,
}

/// Every `example`/`examples` next to a `schema` (media types, parameters, headers) and every
/// `examples` array inside a schema.
fn collect_examples(doc: &Value, node: &Value, at: &str, in_schema: bool, out: &mut Vec<Example>) {
    match node {
        Value::Object(map) => {
            if !in_schema && map.contains_key("schema") {
                let schema = format!("{at}/schema");
                if let Some(value) = map.get("example") {
                    out.push(Example {
                        at: format!("{at}/example"),
                        schema: schema.clone(),
                        value: value.clone(),
                    });
                }
                if let Some(Value::Object(named)) = map.get("examples") {
                    for (name, example) in named {
                        let example = match example.get("$ref").and_then(Value::as_str) {
                            Some(reference) => resolve(doc, reference),
                            None => example,
                        };
                        let value = example
                            .get("value")
                            .unwrap_or_else(|| panic!("{at}/examples/{name} has no value"));
                        out.push(Example {
                            at: format!("{at}/examples/{name}"),
                            schema: schema.clone(),
                            value: value.clone(),
                        });
                    }
                }
            }
            if in_schema {
                if let Some(Value::Array(values)) = map.get("examples") {
                    for (index, value) in values.iter().enumerate() {
                        out.push(Example {
                            at: format!("{at}/examples/{index}"),
                            schema: at.to_owned(),
                            value: value.clone(),
                        });
                    }
                }
                if let Some(value) = map.get("example") {
                    out.push(Example {
                        at: format!("{at}/example"),
                        schema: at.to_owned(),
                        value: value.clone(),
                    });
                }
            }
            for (key, child) in map {
                let child_at = format!("{at}/{}", escape(key));
                // Inside a schema, `examples`/`const`/`enum`/`default` hold data, not schemas.
                if in_schema
                    && matches!(
                        key.as_str(),
                        "examples" | "example" | "const" | "enum" | "default"
                    )
                {
                    continue;
                }
                let child_in_schema = in_schema || key == "schema" || at == "/components/schemas";
                collect_examples(doc, child, &child_at, child_in_schema, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                collect_examples(doc, child, &format!("{at}/{index}"), in_schema, out);
            }
        }
        _ => {}
    }
}

fn spec_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("spec has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item is an object");
            item.keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_spec_and_the_route_table_list_the_same_operations() {
    let doc = spec();
    let in_spec = spec_operations(&doc);
    let in_code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let missing_from_spec: Vec<_> = in_code.difference(&in_spec).collect();
    let missing_from_code: Vec<_> = in_spec.difference(&in_code).collect();
    assert!(
        missing_from_spec.is_empty() && missing_from_code.is_empty(),
        "routes without an operation in docs/openapi.yaml: {missing_from_spec:?}; \
         operations without a route in cafe::routes::ROUTES: {missing_from_code:?}"
    );
    assert_eq!(in_spec.len(), ROUTES.len());
}

#[test]
fn every_example_in_the_spec_validates_against_its_schema() {
    let doc = spec();
    let registry = registry(&doc);
    let mut examples = Vec::new();
    collect_examples(&doc, &doc, "", false, &mut examples);
    // Every request body, success and failure response carries at least one example.
    assert!(
        examples.len() >= 45,
        "only {} examples found",
        examples.len()
    );
    let mut failures = Vec::new();
    for example in &examples {
        let validator = validator_at(&registry, &example.schema);
        let errors: Vec<String> = validator
            .iter_errors(&example.value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{}: {}", example.at, errors.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "examples that break their schema:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_example_check_catches_a_broken_example() {
    let doc = spec();
    let registry = registry(&doc);
    let order = validator_at(&registry, "/components/schemas/CreateOrderRequest");
    assert!(order.is_valid(&json!({"items": [{"itemId": "x", "quantity": 100}]})));
    for broken in [
        json!({"items": [{"itemId": "x", "quantity": 0}]}),
        json!({"items": [{"itemId": "x", "quantity": 101}]}),
        json!({"items": [{"itemId": "x", "quantity": "1"}]}),
        json!({"items": []}),
        json!({"items": [{"itemId": "x", "quantity": 1}], "extra": true}),
    ] {
        assert!(!order.is_valid(&broken), "accepted {broken}");
    }
    let signup = validator_at(&registry, "/components/schemas/SignUpRequest");
    let mut body = json!({
        "name": "Kim", "email": "kim@example.com", "phoneNumber": "010-1234-5678",
        "gender": "MALE", "birth": "1990-01-31", "password": "12345678",
    });
    assert!(signup.is_valid(&body));
    body["birth"] = json!("1990-02-30");
    assert!(!signup.is_valid(&body), "formats are checked");
    let not_found = validator_at(
        &registry,
        "/components/responses/NotFound/content/application~1json/schema",
    );
    assert!(
        !not_found.is_valid(
            &json!({"status": "fail", "error": {"code": "400CO000", "detailMessage": "x"}})
        )
    );
}

/// Every error the code can answer with (405 only comes from the local server's router, which
/// the spec describes in prose since no operation answers it).
fn codes_from_the_error_enum() -> BTreeSet<String> {
    [
        Error::invalid("x"),
        Error::Unauthorized,
        Error::Forbidden,
        Error::NotFound("x"),
        Error::NoRoute,
        Error::RequestTimeout,
        Error::TooManyRequests(1),
        Error::PayloadTooLarge,
        Error::Internal("x".into()),
        Error::Unavailable("x"),
        Error::EmailTaken,
        Error::NotInService,
        Error::NotRestorable,
        Error::RoleNeedsService,
        Error::CommonPassword,
        Error::BadCredentials,
        Error::OutOfStock("x".into()),
        Error::OrderStatusConflict,
        Error::PaymentMismatch,
        Error::GatewayFailed,
        Error::LockBusy,
        Error::IdempotencyConflict,
        Error::ItemUnavailable("x".into()),
        Error::VersionConflict,
        Error::ShopClosed(None),
        Error::ShopFull(1),
        Error::TooManyOpenOrders(1),
        Error::PaymentWindowPassed,
    ]
    .iter()
    .map(|e| e.wire().code.to_owned())
    .collect()
}

/// The `code` constants reachable from `schema` through `$ref`, `allOf`, `oneOf`, `anyOf`.
fn codes_of(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        codes_of(doc, resolve(doc, reference), out);
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            codes_of(doc, part, out);
        }
    }
    if let Some(code) = schema
        .pointer("/properties/error/properties/code/const")
        .and_then(Value::as_str)
    {
        out.insert(code.to_owned());
    }
}

#[test]
fn the_spec_names_exactly_the_codes_the_service_answers_with() {
    let doc = spec();
    let mut in_spec = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let responses = operation["responses"].as_object().expect("responses");
            for required in ["500", "503"] {
                if !responses.contains_key(required) {
                    problems.push(format!("{method} {path} does not document {required}"));
                }
            }
            if operation.get("requestBody").is_some() {
                for required in ["400", "413"] {
                    if !responses.contains_key(required) {
                        problems.push(format!("{method} {path} has a body but no {required}"));
                    }
                }
            }
            let public = operation.get("security") == Some(&json!([]));
            if !public && !responses.contains_key("401") {
                problems.push(format!(
                    "{method} {path} needs a token but does not document 401"
                ));
            }
            for (status, response) in responses {
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(reference) => resolve(&doc, reference),
                    None => response,
                };
                let Some(schema) = response.pointer("/content/application~1json/schema") else {
                    problems.push(format!("{method} {path} {status} has no JSON schema"));
                    continue;
                };
                let mut codes = BTreeSet::new();
                codes_of(&doc, schema, &mut codes);
                if status.starts_with(['4', '5']) && codes.is_empty() {
                    problems.push(format!("{method} {path} {status} names no error code"));
                }
                for code in &codes {
                    if !code.starts_with(status.as_str()) {
                        problems.push(format!("{method} {path} {status} allows {code}"));
                    }
                }
                if (status == "503" || codes.contains("409PA001"))
                    && response.pointer("/headers/Retry-After").is_none()
                {
                    problems.push(format!(
                        "{method} {path} {status} lacks the Retry-After header"
                    ));
                }
                in_spec.extend(codes);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut from_code = codes_from_the_error_enum();
    from_code.remove("405CO000");
    assert_eq!(
        in_spec, from_code,
        "codes in docs/openapi.yaml vs cafe::Error::wire"
    );
}

#[test]
fn public_and_protected_operations_match_the_contract() {
    let doc = spec();
    let public: BTreeSet<(String, String)> = [
        ("POST", "/member"),
        ("POST", "/auth/login"),
        ("POST", "/auth/refresh"),
        // Holding the refresh token is the credential.
        ("POST", "/auth/logout"),
        ("GET", "/items"),
        ("GET", "/items/{itemId}"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/shop"),
        ("GET", "/shop/board"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(
        doc["security"],
        json!([{"bearerAuth": []}]),
        "bearer auth is the default"
    );
    assert_eq!(
        doc.pointer("/components/securitySchemes/bearerAuth/scheme"),
        Some(&json!("bearer"))
    );
    for (method, path) in spec_operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let is_public = operation.get("security") == Some(&json!([]));
        assert_eq!(
            is_public,
            public.contains(&(method.clone(), path.clone())),
            "{method} {path}"
        );
    }
}
