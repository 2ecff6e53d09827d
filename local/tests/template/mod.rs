//! Reading `template.yaml` in tests: the short-form tags become the long form, so every lookup
//! sees one shape; the functions by their binary; each function's environment.

#![allow(dead_code)]

use cafe::store::dynamo::table::{ProjectionSpec, TableSpec, credentials_spec, table_spec};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every deployed function and which token keys it reads (its crate's own declaration).
pub const FUNCTIONS: &[(&str, cafe::config::TokenKey)] = &[
    ("member-signup", member_signup::TOKEN_KEY),
    ("auth-login", auth_login::TOKEN_KEY),
    ("auth-refresh", auth_refresh::TOKEN_KEY),
    ("auth-logout", auth_logout::TOKEN_KEY),
    ("member-get", member_get::TOKEN_KEY),
    ("member-withdraw", member_withdraw::TOKEN_KEY),
    ("member-restore", member_restore::TOKEN_KEY),
    ("items-list", items_list::TOKEN_KEY),
    ("items-get", items_get::TOKEN_KEY),
    ("order-create", order_create::TOKEN_KEY),
    ("order-get", order_get::TOKEN_KEY),
    ("order-list", order_list::TOKEN_KEY),
    ("order-cancel", order_cancel::TOKEN_KEY),
    ("payment-create", payment_create::TOKEN_KEY),
    ("jwks-get", jwks_get::TOKEN_KEY),
    ("admin-member-role", admin_member_role::TOKEN_KEY),
    ("admin-item-create", admin_item_create::TOKEN_KEY),
    ("admin-item-update", admin_item_update::TOKEN_KEY),
    ("admin-item-stock", admin_item_stock::TOKEN_KEY),
    ("admin-order-list", admin_order_list::TOKEN_KEY),
    ("admin-item-list", admin_item_list::TOKEN_KEY),
    ("admin-order-status", admin_order_status::TOKEN_KEY),
    ("shop-get", shop_get::TOKEN_KEY),
    ("shop-board", shop_board::TOKEN_KEY),
    ("admin-shop-update", admin_shop_update::TOKEN_KEY),
    ("live-ticket", live_ticket::TOKEN_KEY),
    ("live-connect", live_connect::TOKEN_KEY),
    ("live-disconnect", live_disconnect::TOKEN_KEY),
    ("live-subscribe", live_subscribe::TOKEN_KEY),
    ("live-sender", live_sender::TOKEN_KEY),
    ("expire-withdrawals", expire_withdrawals::TOKEN_KEY),
    ("expire-orders", expire_orders::TOKEN_KEY),
    ("payment-reconcile", payment_reconcile::TOKEN_KEY),
];

/// Whether a deployed function moves money (its crate's `GATEWAY`; `None` for the rest).
pub fn gateway_use(function: &str) -> cafe::gateway::GatewayUse {
    match function {
        "payment-create" => payment_create::GATEWAY,
        "order-cancel" => order_cancel::GATEWAY,
        "payment-reconcile" => payment_reconcile::GATEWAY,
        _ => cafe::gateway::GatewayUse::None,
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("local/ has a parent")
        .to_path_buf()
}

/// `template.yaml`, untagged.
pub fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    untag(&serde_yaml::from_str(&text).expect("template.yaml is YAML"))
}

/// Short-form tags (`!Ref`, `!GetAtt`, `!Sub`) become the long form (`Ref`, `Fn::GetAtt`, …).
pub fn untag(value: &Value) -> Value {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = if name == "Ref" {
                "Ref".to_owned()
            } else {
                format!("Fn::{name}")
            };
            let mut map = serde_yaml::Mapping::new();
            map.insert(Value::from(key), untag(&tagged.value));
            Value::Mapping(map)
        }
        Value::Mapping(map) => {
            Value::Mapping(map.iter().map(|(k, v)| (k.clone(), untag(v))).collect())
        }
        Value::Sequence(items) => Value::Sequence(items.iter().map(untag).collect()),
        other => other.clone(),
    }
}

pub fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

pub fn string_at(value: &Value, path: &[&str]) -> Option<String> {
    get(value, path).and_then(Value::as_str).map(str::to_owned)
}

/// Template functions by their `BuildProperties.Binary`: (logical id, resource).
pub fn functions(template: &Value) -> BTreeMap<String, (String, Value)> {
    let resources = get(template, &["Resources"])
        .and_then(Value::as_mapping)
        .expect("Resources");
    let mut found = BTreeMap::new();
    for (id, resource) in resources {
        if string_at(resource, &["Type"]).as_deref() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().expect("logical id").to_owned();
        let binary = string_at(resource, &["Metadata", "BuildProperties", "Binary"])
            .unwrap_or_else(|| format!("<{id} has no Metadata.BuildProperties.Binary>"));
        assert!(
            found
                .insert(binary.clone(), (id.clone(), resource.clone()))
                .is_none(),
            "two template functions build the binary {binary}"
        );
    }
    found
}

/// A function's environment as deployed: the Globals' variables, then its own on top.
pub fn environment(template: &Value, function: &Value) -> BTreeMap<String, Value> {
    let mut vars = BTreeMap::new();
    for source in [
        get(
            template,
            &["Globals", "Function", "Environment", "Variables"],
        ),
        get(function, &["Properties", "Environment", "Variables"]),
    ]
    .into_iter()
    .flatten()
    {
        for (name, value) in source.as_mapping().into_iter().flatten() {
            let name = name.as_str().expect("variable name").to_owned();
            vars.insert(name, value.clone());
        }
    }
    vars
}

/// Fails the test with every problem listed, so one run shows everything that disagrees.
pub fn report(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what} disagree:\n  - {}",
        problems.join("\n  - ")
    );
}

/// One grant: an action on a resource pattern, both possibly with `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub action: String,
    pub resource: String,
    /// The statement's `ForAllValues:StringLike` `dynamodb:LeadingKeys` patterns: the partition
    /// keys its item calls may name. `None` for a statement without that condition.
    pub leading_keys: Option<Vec<String>>,
}

/// A policy resource as a pattern over the canonical names (`table/Table/index/x` …).
pub fn resource_pattern(template: &Value, value: &Value) -> Result<String, String> {
    if value.as_str() == Some("*") {
        return Ok("*".into());
    }
    let kind = |logical: &str| -> Result<&'static str, String> {
        match string_at(template, &["Resources", logical, "Type"]).as_deref() {
            Some("AWS::DynamoDB::Table") => Ok("table"),
            Some("AWS::SecretsManager::Secret") => Ok("secret"),
            Some("AWS::Events::EventBus") => Ok("event-bus"),
            Some("AWS::SQS::Queue") => Ok("queue"),
            other => Err(format!(
                "a policy names {logical}, of unsupported type {other:?}"
            )),
        }
    };
    if let Some(logical) = string_at(value, &["Ref"]) {
        return Ok(format!("{}/{logical}", kind(&logical)?));
    }
    if let Some(target) = get(value, &["Fn::GetAtt"]) {
        let parts: Vec<String> = match target {
            Value::String(dotted) => dotted.split('.').map(str::to_owned).collect(),
            Value::Sequence(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        return match parts.as_slice() {
            [logical, attribute] if attribute == "Arn" => {
                Ok(format!("{}/{logical}", kind(logical)?))
            }
            _ => Err(format!("unsupported !GetAtt {target:?} in a policy")),
        };
    }
    // A WebSocket API's connections: `execute-api/<Api>/<stage>/<METHOD>/@connections/*`.
    if let Some(text) = string_at(value, &["Fn::Sub"])
        && let Some(rest) = text
            .strip_prefix("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${")
        && let Some((api, path)) = rest.split_once('}')
        && string_at(template, &["Resources", api, "Type"]).as_deref()
            == Some("AWS::ApiGatewayV2::Api")
    {
        return Ok(format!("execute-api/{api}{path}"));
    }
    if let Some(text) = string_at(value, &["Fn::Sub"])
        && let Some(rest) = text.strip_prefix("${")
        && let Some((reference, suffix)) = rest.split_once(".Arn}")
    {
        return Ok(format!("{}/{reference}{suffix}", kind(reference)?));
    }
    Err(format!("unsupported policy resource {value:?}"))
}

pub fn one_or_many(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Sequence(items)) => items.clone(),
        Some(single) => vec![single.clone()],
        None => Vec::new(),
    }
}

/// The grants of a function's `Policies` (inline statements only: anything else is refused,
/// so a managed policy or a SAM policy template cannot widen a role unseen).
pub fn grants_of(template: &Value, function: &Value) -> Result<Vec<Grant>, Vec<String>> {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for policy in one_or_many(get(function, &["Properties", "Policies"])) {
        match policy.get("Statement") {
            Some(_) => documents.push(policy),
            None => problems.push(format!(
                "unsupported policy {policy:?}: only inline statements"
            )),
        }
    }
    let grants = document_grants(template, &documents, &mut problems);
    if problems.is_empty() {
        Ok(grants)
    } else {
        Err(problems)
    }
}

/// The grants of policy documents (`{Statement: [...]}`), sorted; what cannot be read goes to
/// `problems`.
pub fn document_grants(
    template: &Value,
    documents: &[Value],
    problems: &mut Vec<String>,
) -> Vec<Grant> {
    let mut grants = Vec::new();
    for statement in documents
        .iter()
        .flat_map(|d| one_or_many(d.get("Statement")))
    {
        if string_at(&statement, &["Effect"]).as_deref() != Some("Allow") {
            problems.push(format!(
                "only Allow statements are supported: {statement:?}"
            ));
            continue;
        }
        let leading_keys = match statement.get("Condition") {
            None => None,
            Some(condition) => {
                let patterns = condition
                    .get("ForAllValues:StringLike")
                    .and_then(|c| c.get("dynamodb:LeadingKeys"));
                let known = condition.as_mapping().is_some_and(|m| m.len() == 1)
                    && condition
                        .get("ForAllValues:StringLike")
                        .and_then(Value::as_mapping)
                        .is_some_and(|m| m.len() == 1);
                match patterns {
                    Some(patterns) if known => Some(
                        one_or_many(Some(patterns))
                            .iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect::<Vec<_>>(),
                    ),
                    _ => {
                        problems.push(format!(
                            "only a ForAllValues:StringLike dynamodb:LeadingKeys condition is supported: {condition:?}"
                        ));
                        continue;
                    }
                }
            }
        };
        for action in one_or_many(statement.get("Action")) {
            let Some(action) = action.as_str() else {
                problems.push(format!("an action that is not a string: {action:?}"));
                continue;
            };
            for resource in one_or_many(statement.get("Resource")) {
                match resource_pattern(template, &resource) {
                    Ok(resource) => grants.push(Grant {
                        action: action.to_owned(),
                        resource,
                        leading_keys: leading_keys.clone(),
                    }),
                    Err(problem) => problems.push(problem),
                }
            }
        }
    }
    grants.sort();
    grants
}

fn projection_name(projection: ProjectionSpec) -> &'static str {
    match projection {
        ProjectionSpec::All => "ALL",
        ProjectionSpec::KeysOnly => "KEYS_ONLY",
    }
}

/// `[(name, HASH|RANGE)]` of a template KeySchema.
fn key_schema(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_sequence)
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    (
                        string_at(k, &["AttributeName"]).unwrap_or_default(),
                        string_at(k, &["KeyType"]).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn expected_keys(hash: &str, range: &str) -> Vec<(String, String)> {
    vec![
        (hash.to_owned(), "HASH".to_owned()),
        (range.to_owned(), "RANGE".to_owned()),
    ]
}

/// How `template`'s table (template.yaml, or SAM's translation of it) differs from the table the
/// code uses (`table_spec()`), and policies granting an index the table lacks.
pub fn table_problems(template: &Value) -> Vec<String> {
    let spec: TableSpec = table_spec();
    let table = get(template, &["Resources", "Table"]).expect("a resource named Table");
    let props = table.get("Properties").expect("Table.Properties");
    let mut problems = Vec::new();

    if string_at(table, &["Type"]).as_deref() != Some("AWS::DynamoDB::Table") {
        problems.push("Resources.Table is not an AWS::DynamoDB::Table".to_owned());
    }
    let actual = key_schema(props.get("KeySchema"));
    let expected = expected_keys(spec.partition_key.name, spec.sort_key.name);
    if actual != expected {
        problems.push(format!(
            "table key schema {actual:?}, code uses {expected:?}"
        ));
    }

    let mut expected_attributes = BTreeMap::new();
    for key in [spec.partition_key, spec.sort_key] {
        expected_attributes.insert(key.name.to_owned(), key.attribute_type.to_owned());
    }
    for index in &spec.global_secondary_indexes {
        for key in [index.partition_key, index.sort_key] {
            expected_attributes.insert(key.name.to_owned(), key.attribute_type.to_owned());
        }
    }
    let actual_attributes: BTreeMap<String, String> = props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .map(|defs| {
            defs.iter()
                .map(|d| {
                    (
                        string_at(d, &["AttributeName"]).unwrap_or_default(),
                        string_at(d, &["AttributeType"]).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if actual_attributes != expected_attributes {
        problems.push(format!(
            "attribute definitions {actual_attributes:?}, code uses {expected_attributes:?}"
        ));
    }

    let actual_indexes: BTreeMap<String, (Vec<(String, String)>, String)> = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .map(|indexes| {
            indexes
                .iter()
                .map(|i| {
                    (
                        string_at(i, &["IndexName"]).unwrap_or_default(),
                        (
                            key_schema(i.get("KeySchema")),
                            string_at(i, &["Projection", "ProjectionType"]).unwrap_or_default(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected_indexes: BTreeMap<String, (Vec<(String, String)>, String)> = spec
        .global_secondary_indexes
        .iter()
        .map(|i| {
            (
                i.name.to_owned(),
                (
                    expected_keys(i.partition_key.name, i.sort_key.name),
                    projection_name(i.projection).to_owned(),
                ),
            )
        })
        .collect();
    if actual_indexes != expected_indexes {
        problems.push(format!(
            "indexes {actual_indexes:?}, code uses {expected_indexes:?}"
        ));
    }

    let checks = [
        (
            &["TimeToLiveSpecification", "AttributeName"][..],
            spec.ttl_attribute,
        ),
        (&["BillingMode"][..], spec.billing_mode),
        (
            &["StreamSpecification", "StreamViewType"][..],
            spec.stream_view_type,
        ),
    ];
    for (path, expected) in checks {
        let actual = string_at(props, path);
        if actual.as_deref() != Some(expected) {
            problems.push(format!(
                "{}: {actual:?}, code uses {expected:?}",
                path.join(".")
            ));
        }
    }
    if get(props, &["TimeToLiveSpecification", "Enabled"]).and_then(Value::as_bool) != Some(true) {
        problems.push("TTL is not enabled".to_owned());
    }

    // Every index a policy grants must exist, or the function is denied at run time.
    let index_names: BTreeSet<&str> = spec
        .global_secondary_indexes
        .iter()
        .map(|i| i.name)
        .collect();
    let text = serde_yaml::to_string(template).expect("serialise");
    for granted in text.split("${Table.Arn}/index/").skip(1) {
        let name: String = granted
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !index_names.contains(name.as_str()) {
            problems.push(format!(
                "a policy grants the index {name:?}, which the table does not have"
            ));
        }
    }
    problems.extend(credentials_table_problems(template));
    problems
}

/// How `template`'s `CredentialsTable` differs from `credentials_spec()`; above all, it must
/// have no stream (a stream would show every password to its readers) and no index.
fn credentials_table_problems(template: &Value) -> Vec<String> {
    let spec = credentials_spec();
    let Some(table) = get(template, &["Resources", "CredentialsTable"]) else {
        return vec!["no resource named CredentialsTable".to_owned()];
    };
    let props = table.get("Properties").cloned().unwrap_or(Value::Null);
    let mut problems = Vec::new();
    if string_at(table, &["Type"]).as_deref() != Some("AWS::DynamoDB::Table") {
        problems.push("Resources.CredentialsTable is not an AWS::DynamoDB::Table".to_owned());
    }
    let expected = vec![(spec.partition_key.name.to_owned(), "HASH".to_owned())];
    let actual = key_schema(props.get("KeySchema"));
    if actual != expected {
        problems.push(format!(
            "credentials table key schema {actual:?}, code uses {expected:?}"
        ));
    }
    if string_at(&props, &["BillingMode"]).as_deref() != Some(spec.billing_mode) {
        problems.push("the credentials table is not on-demand".to_owned());
    }
    for absent in [
        "StreamSpecification",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "KinesisStreamSpecification",
    ] {
        if props.get(absent).is_some() {
            problems.push(format!(
                "the credentials table has {absent}: its items would be copied where other readers see them"
            ));
        }
    }
    if string_at(table, &["DeletionPolicy"]).as_deref() != Some("Retain") {
        problems.push("the credentials table is not retained when the stack goes".to_owned());
    }
    problems
}
