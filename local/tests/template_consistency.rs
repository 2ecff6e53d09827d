//! Holds the four places that name the functions to one another: the crates under `functions/`,
//! the route table (`ROUTES` + `NON_HTTP_FUNCTIONS`), `template.yaml` and the sample events in
//! `events/`; and holds the template's table to the shape the DynamoDB store relies on.
//!
//! Every check collects its complaints, so one run lists everything that disagrees.

use cafe::routes::{NON_HTTP_FUNCTIONS, ROUTES, RouteMatch, match_route};
mod template;

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use template::{get, report, root, string_at};

/// Every function named by the code: HTTP routes and the two non-HTTP functions.
fn code_functions() -> BTreeSet<String> {
    ROUTES
        .iter()
        .map(|r| r.function)
        .chain(NON_HTTP_FUNCTIONS.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// Function crates: directories under `functions/` with a `Cargo.toml`.
fn crate_dirs() -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, path)
        })
        .collect()
}

fn events_of(resource: &Value, kind: &str) -> Vec<Value> {
    get(resource, &["Properties", "Events"])
        .and_then(Value::as_mapping)
        .map(|events| {
            events
                .values()
                .filter(|e| string_at(e, &["Type"]).as_deref() == Some(kind))
                .map(|e| e.get("Properties").cloned().unwrap_or(Value::Null))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn crates_routes_template_and_events_name_the_same_functions() {
    let template = template::template();
    let code = code_functions();
    let crates = crate_dirs();
    let functions = template::functions(&template);
    let mut problems = Vec::new();

    let names = |set: &dyn Fn(&str) -> bool| -> Vec<String> {
        code.iter().filter(|f| !set(f)).cloned().collect()
    };
    for missing in names(&|f| crates.contains_key(f)) {
        problems.push(format!(
            "{missing}: in the route table but no crate functions/{missing}"
        ));
    }
    for missing in names(&|f| functions.contains_key(f)) {
        problems.push(format!(
            "{missing}: in the route table but not in template.yaml"
        ));
    }
    for missing in names(&|f| root().join("events").join(format!("{f}.json")).is_file()) {
        problems.push(format!("{missing}: no sample event events/{missing}.json"));
    }
    for extra in crates.keys().filter(|c| !code.contains(*c)) {
        problems.push(format!(
            "functions/{extra}: a crate the route table does not know"
        ));
    }
    for extra in functions.keys().filter(|f| !code.contains(*f)) {
        problems.push(format!(
            "template.yaml builds {extra}, unknown to the route table"
        ));
    }

    for (name, dir) in &crates {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let package = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_owned());
        if package.as_deref() != Some(name.as_str()) {
            problems.push(format!(
                "functions/{name}: package name {package:?} differs from its directory (the binary must be {name})"
            ));
        }
        if !dir.join("src/main.rs").is_file() {
            problems.push(format!("functions/{name}: no src/main.rs, so no binary"));
        }
    }

    for (binary, (id, resource)) in &functions {
        if string_at(resource, &["Metadata", "BuildMethod"]).as_deref() != Some("rust-cargolambda")
        {
            problems.push(format!("{id}: BuildMethod is not rust-cargolambda"));
        }
        // cargo-lambda builds the binary from the workspace, so CodeUri is the workspace root.
        if string_at(resource, &["Properties", "CodeUri"]).as_deref() != Some(".") {
            problems.push(format!(
                "{id} ({binary}): CodeUri must be the workspace root `.`"
            ));
        }
        let http = events_of(resource, "HttpApi");
        match ROUTES.iter().find(|r| r.function == binary) {
            Some(route) => {
                let declared: Vec<(String, String)> = http
                    .iter()
                    .map(|p| {
                        (
                            string_at(p, &["Method"]).unwrap_or_default(),
                            string_at(p, &["Path"]).unwrap_or_default(),
                        )
                    })
                    .collect();
                let expected = vec![(route.method.to_owned(), route.path.to_owned())];
                if declared != expected {
                    problems.push(format!(
                        "{id} ({binary}): HttpApi events {declared:?}, route table says {expected:?}"
                    ));
                }
                for p in &http {
                    if get(p, &["ApiId", "Ref"]).and_then(Value::as_str) != Some("HttpApi") {
                        problems.push(format!(
                            "{id}: its HttpApi event is not on the HttpApi resource"
                        ));
                    }
                }
            }
            None if !http.is_empty() => {
                problems.push(format!(
                    "{id} ({binary}): an HttpApi event on a non-HTTP function"
                ));
            }
            None => {}
        }
    }

    if let Some((id, expiry)) = functions.get("expire-withdrawals") {
        let schedules: Vec<_> = events_of(expiry, "Schedule")
            .iter()
            .filter_map(|p| string_at(p, &["Schedule"]))
            .collect();
        if schedules != ["cron(0 18 * * ? *)"] {
            problems.push(format!(
                "{id}: schedule {schedules:?}, expected 03:00 KST = cron(0 18 * * ? *)"
            ));
        }
    }
    if let Some((id, publisher)) = functions.get("events-publisher") {
        let streams = events_of(publisher, "DynamoDB");
        let ok = streams.len() == 1
            && get(&streams[0], &["Stream", "Fn::GetAtt"]).and_then(Value::as_str)
                == Some("Table.StreamArn")
            && get(&streams[0], &["FunctionResponseTypes"])
                .and_then(Value::as_sequence)
                .is_some_and(|t| {
                    t.iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                });
        if !ok {
            problems.push(format!(
                "{id}: needs exactly one DynamoDB event on Table.StreamArn with ReportBatchItemFailures"
            ));
        }
    }

    problems.extend(http_event_problems());
    problems.extend(non_http_event_problems());
    report("functions, routes, template and events", problems);
}

/// Each HTTP sample is an API Gateway HTTP API payload 2.0 for exactly its route.
fn http_event_problems() -> Vec<String> {
    let mut problems = Vec::new();
    for route in ROUTES {
        let file = root()
            .join("events")
            .join(format!("{}.json", route.function));
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // reported as missing above
        };
        let name = format!("events/{}.json", route.function);
        let event: serde_json::Value = match serde_json::from_str(&text) {
            Ok(event) => event,
            Err(e) => {
                problems.push(format!("{name}: not JSON ({e})"));
                continue;
            }
        };
        let text_at = |pointer: &str| event.pointer(pointer).and_then(|v| v.as_str());
        let route_key = format!("{} {}", route.method, route.path);
        if text_at("/version") != Some("2.0") {
            problems.push(format!(
                "{name}: version must be \"2.0\" (HTTP API payload 2.0)"
            ));
        }
        for pointer in ["/routeKey", "/requestContext/routeKey"] {
            if text_at(pointer) != Some(route_key.as_str()) {
                problems.push(format!(
                    "{name}: {pointer} is {:?}, expected {route_key:?}",
                    text_at(pointer)
                ));
            }
        }
        if text_at("/requestContext/http/method") != Some(route.method) {
            problems.push(format!(
                "{name}: requestContext.http.method is {:?}, expected {}",
                text_at("/requestContext/http/method"),
                route.method
            ));
        }
        let raw_path = text_at("/rawPath").unwrap_or_default();
        if text_at("/requestContext/http/path") != Some(raw_path) {
            problems.push(format!(
                "{name}: rawPath and requestContext.http.path differ"
            ));
        }
        match match_route(route.method, raw_path) {
            RouteMatch::Found {
                route: found,
                params,
            } if found.function == route.function => {
                for (param, value) in params {
                    if text_at(&format!("/pathParameters/{param}")) != Some(value.as_str()) {
                        problems.push(format!(
                            "{name}: pathParameters.{param} differs from rawPath"
                        ));
                    }
                }
            }
            other => problems.push(format!(
                "{name}: rawPath {raw_path:?} routes to {other:?}, not {}",
                route.function
            )),
        }
    }
    problems
}

/// The scheduled job's sample is an EventBridge scheduled event; the publisher's a stream batch.
fn non_http_event_problems() -> Vec<String> {
    let read = |name: &str| -> Option<serde_json::Value> {
        let text =
            std::fs::read_to_string(root().join("events").join(format!("{name}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    };
    let mut problems = Vec::new();
    if let Some(event) = read("expire-withdrawals")
        && event.get("detail-type").and_then(|v| v.as_str()) != Some("Scheduled Event")
    {
        problems.push("events/expire-withdrawals.json: not a Scheduled Event".to_owned());
    }
    if let Some(event) = read("events-publisher") {
        let records = event.get("Records").and_then(|r| r.as_array());
        let stream_records = records.is_some_and(|records| {
            !records.is_empty()
                && records
                    .iter()
                    .all(|r| r.get("eventSource").and_then(|s| s.as_str()) == Some("aws:dynamodb"))
        });
        if !stream_records {
            problems.push(
                "events/events-publisher.json: not a batch of DynamoDB stream records".to_owned(),
            );
        }
    }
    problems
}

#[test]
fn the_template_table_is_the_table_the_code_uses() {
    report(
        "template.yaml's table and the code's table_spec()",
        template::table_problems(&template::template()),
    );
}

/// The Cafe metrics `template.yaml` names: in alarms (plain or metric math) and in the
/// dashboard's rows and SEARCH expressions.
fn template_metric_names(template: &Value, text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let resources = get(template, &["Resources"])
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    for (_, resource) in resources {
        if string_at(&resource, &["Type"]).as_deref() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        if string_at(&resource, &["Properties", "Namespace"]).as_deref() == Some("Cafe") {
            names.extend(string_at(&resource, &["Properties", "MetricName"]));
        }
        let queries = get(&resource, &["Properties", "Metrics"])
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for query in queries {
            let metric = get(&query, &["MetricStat", "Metric"]);
            if metric.and_then(|m| string_at(m, &["Namespace"])).as_deref() == Some("Cafe") {
                names.extend(metric.and_then(|m| string_at(m, &["MetricName"])));
            }
        }
    }
    let word = |rest: &str| -> String {
        rest.chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect()
    };
    for marker in ["[\"Cafe\", \"", "MetricName=\\\""] {
        for (at, _) in text.match_indices(marker) {
            names.insert(word(&text[at + marker.len()..]));
        }
    }
    names
}

#[test]
fn alarms_and_dashboard_name_only_metrics_the_code_writes_and_show_them_all() {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let named = template_metric_names(&template::template(), &text);
    let written: BTreeSet<String> = cafe::metrics::CATALOGUE
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut problems: Vec<String> = named
        .difference(&written)
        .map(|name| format!("{name}: in template.yaml but no function writes it"))
        .collect();
    // Every metric is on the dashboard: as a row (`[".", "Name"` continues a Cafe row) or a
    // SEARCH expression.
    for name in &written {
        let shown = [
            format!("\"Cafe\", \"{name}\""),
            format!("[\".\", \"{name}\""),
            format!("MetricName=\\\"{name}\\\""),
        ]
        .iter()
        .any(|form| text.contains(form.as_str()));
        if !shown {
            problems.push(format!("{name}: written but not on the dashboard"));
        }
    }
    // The dashboard body is JSON once CloudFormation has substituted it.
    let body = string_at(
        &template::template(),
        &[
            "Resources",
            "Dashboard",
            "Properties",
            "DashboardBody",
            "Fn::Sub",
        ],
    )
    .unwrap_or_default();
    let mut substituted = String::new();
    let mut rest = body.as_str();
    while let Some((before, after)) = rest.split_once("${") {
        substituted.push_str(before);
        substituted.push('x');
        rest = after.split_once('}').map_or("", |(_, tail)| tail);
    }
    substituted.push_str(rest);
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&substituted) {
        problems.push(format!("the dashboard body is not JSON: {error}"));
    }
    assert!(named.len() >= 4, "alarms on Cafe metrics found: {named:?}");
    report(
        "template.yaml's alarms and dashboard and the metrics catalogue",
        problems,
    );
}

/// Every reader of the table's stream in `template`: functions with a DynamoDB event on it and
/// pipes whose source it is.
fn stream_readers(template: &Value) -> Vec<String> {
    let mut readers = Vec::new();
    let resources = get(template, &["Resources"])
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default().to_owned();
        let events = get(&resource, &["Properties", "Events"])
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        for (_, event) in events {
            if string_at(&event, &["Type"]).as_deref() == Some("DynamoDB") {
                readers.push(name.clone());
            }
        }
        if string_at(&resource, &["Type"]).as_deref() == Some("AWS::Pipes::Pipe") {
            readers.push(name.clone());
        }
    }
    readers.sort();
    readers
}

/// AWS advises at most two readers per stream shard (more are throttled): the publisher and
/// the history archive's pipe. `live-sender` hears the bus instead, through a rule whose
/// detail-types are exactly the events that change an order's status.
#[test]
fn the_stream_has_two_readers_and_the_live_sender_hears_the_bus() {
    let template = template::template();
    let mut problems = Vec::new();
    let readers = stream_readers(&template);
    if readers != ["EventsPublisherFunction", "HistoryArchivePipe"] {
        problems.push(format!(
            "the table's stream is read by {readers:?}: at most the publisher and the archive pipe"
        ));
    }
    let rule = get(
        &template,
        &[
            "Resources",
            "LiveSenderFunction",
            "Properties",
            "Events",
            "OrderStatus",
        ],
    );
    let pattern = rule.and_then(|r| get(r, &["Properties", "Pattern"]));
    if rule.and_then(|r| string_at(r, &["Type"])).as_deref() != Some("EventBridgeRule") {
        problems.push("LiveSenderFunction: no EventBridgeRule event OrderStatus".to_owned());
    }
    if rule.and_then(|r| get(r, &["Properties", "EventBusName", "Ref"]))
        != Some(&Value::String("EventBus".into()))
    {
        problems.push("LiveSenderFunction's rule is not on the EventBus".to_owned());
    }
    let strings = |path: &[&str]| -> BTreeSet<String> {
        pattern
            .and_then(|p| get(p, path))
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expected_types: BTreeSet<String> = cafe::domain::live::LIVE_EVENT_TYPES
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    if strings(&["detail-type"]) != expected_types {
        problems.push(format!(
            "the live rule's detail-types {:?}, the code's LIVE_EVENT_TYPES {expected_types:?}",
            strings(&["detail-type"])
        ));
    }
    if strings(&["source"]) != BTreeSet::from([cafe::domain::events::EVENT_SOURCE.to_owned()]) {
        problems.push("the live rule does not match the cafe's source alone".to_owned());
    }
    // The sample is what the rule delivers.
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/live-sender.json")).expect("sample"),
    )
    .expect("json");
    if sample["source"] != cafe::domain::events::EVENT_SOURCE
        || !sample["detail-type"]
            .as_str()
            .is_some_and(|t| expected_types.contains(t))
    {
        problems.push("events/live-sender.json: not an event the live rule delivers".to_owned());
    }
    report("the stream's readers and the live sender's rule", problems);
}
