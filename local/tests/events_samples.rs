//! Every sample in `events/` (as `sam local invoke -e` and `cargo lambda invoke --data-file`
//! take them) parses with `lambda_http` as an HTTP API payload 2.0 and gets a contract answer
//! from its function's handler on a fresh in-memory app.

use cafe::routes::{NON_HTTP_FUNCTIONS, ROUTES, RouteMatch, match_route};
use cafe_local::testing::{TestApp, json_of};
use lambda_http::RequestExt;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The fixed outcome of the samples whose answer does not depend on earlier requests.
const EXPECTED_STATUS: &[(&str, u16)] = &[
    ("member-signup", 201),
    // Nobody is registered in a fresh app.
    ("auth-login", 401),
    ("auth-refresh", 401),
    ("auth-logout", 401),
    // Their bearer token is signed with another secret.
    ("member-get", 401),
    ("member-withdraw", 401),
    ("member-restore", 401),
    ("items-list", 200),
    ("items-get", 200),
];

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The HTTP samples: function name → file contents.
fn http_samples() -> BTreeMap<String, String> {
    let mut samples = BTreeMap::new();
    let entries = std::fs::read_dir(events_dir()).expect("events/ is readable");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        if NON_HTTP_FUNCTIONS.contains(&stem.as_str()) {
            continue;
        }
        if ROUTES.iter().any(|r| r.function == stem) {
            let text = std::fs::read_to_string(&path).expect("sample is readable");
            samples.insert(stem, text);
        }
    }
    samples
}

#[test]
fn every_http_function_has_a_sample() {
    let samples = http_samples();
    let missing: Vec<_> = ROUTES
        .iter()
        .filter(|r| !samples.contains_key(r.function))
        .map(|r| r.function)
        .collect();
    assert!(
        missing.is_empty(),
        "no events/<function>.json for {missing:?}"
    );
}

#[test]
fn samples_are_api_gateway_http_api_2_0_events_of_their_route() {
    for (function, text) in http_samples() {
        let raw: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let route = ROUTES
            .iter()
            .find(|r| r.function == function)
            .expect("route");
        assert_eq!(raw["version"], "2.0", "{function}");
        assert_eq!(
            raw["routeKey"],
            format!("{} {}", route.method, route.path),
            "{function}"
        );
        assert_eq!(
            raw["requestContext"]["http"]["method"], route.method,
            "{function}"
        );
        assert_eq!(
            raw["requestContext"]["http"]["path"], raw["rawPath"],
            "{function}"
        );
        assert!(
            raw["requestContext"]["http"]["sourceIp"].is_string(),
            "{function}"
        );
        assert_eq!(raw["isBase64Encoded"], false, "{function}");
        if raw.get("body").is_some() {
            assert!(raw["body"].is_string(), "{function}: body must be a string");
            assert_eq!(
                raw["headers"]["content-type"], "application/json",
                "{function}"
            );
        }

        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{function}: lambda_http cannot parse it: {e}"));
        let RouteMatch::Found {
            route: matched,
            params,
        } = match_route(request.method().as_str(), request.uri().path())
        else {
            panic!(
                "{function}: {} {} matches no route",
                request.method(),
                request.uri().path()
            );
        };
        assert_eq!(matched.function, function);
        let parsed = request.path_parameters();
        for (name, value) in &params {
            assert_eq!(
                parsed.first(name),
                Some(value.as_str()),
                "{function}: pathParameters.{name}"
            );
        }
        assert_eq!(
            parsed.iter().count(),
            params.len(),
            "{function}: stray pathParameters"
        );
    }
}

#[tokio::test]
async fn every_sample_gets_a_contract_answer_and_never_a_5xx() {
    let samples = http_samples();
    assert!(!samples.is_empty());
    for (function, text) in samples {
        let t = TestApp::new().await;
        let request = lambda_http::request::from_str(&text).expect("parses");
        let response = cafe_local::dispatch(&function, request, &t.app).await;
        let status = response.status().as_u16();
        let body = json_of(&response);
        assert!(status < 500, "{function}: {status} {body}");
        if function == "jwks-get" && status == 200 {
            // A plain RFC 7517 JWK Set, no envelope (what JWT libraries read).
            let keys = body["keys"].as_array().expect("keys");
            assert!(!keys.is_empty(), "{body}");
        } else if (200..300).contains(&status) {
            assert_eq!(body["status"], "success", "{function}: {body}");
        } else {
            assert_eq!(body["status"], "fail", "{function}: {body}");
            let code = body["error"]["code"].as_str().expect("error.code");
            assert_eq!(code[..3], status.to_string(), "{function}: {body}");
            assert!(
                body["error"]["detailMessage"].is_string(),
                "{function}: {body}"
            );
        }
        if let Some((_, expected)) = EXPECTED_STATUS.iter().find(|(f, _)| *f == function) {
            assert_eq!(status, *expected, "{function}: {body}");
        }
    }
}

#[test]
fn every_expected_status_has_its_sample() {
    let samples = http_samples();
    for (function, _) in EXPECTED_STATUS {
        assert!(
            samples.contains_key(*function),
            "events/{function}.json is missing"
        );
    }
}
