//! What AWS SAM really deploys, checked against what the code needs: `scripts/test.sh` translates
//! `template.yaml` with samtranslator (`scripts/translate-template.py`, the library behind the
//! AWS::Serverless transform) and runs these tests on the CloudFormation it produced:
//! - every function's environment makes the configuration its code builds at init (production,
//!   the AWS backend, its table, its lock cache, the token key exactly where tokens are checked);
//! - every function's role holds exactly the statements of its policy in `template.yaml` (which
//!   the IAM test holds to the recorded calls) and no managed policy beyond the execution basics;
//! - the table's keys and indexes are the ones the code uses.
//!
//!   CAFE_TRANSLATED_TEMPLATE=translated.json cargo test -p cafe-local --test translated_template -- --ignored

mod template;

use cafe::config::{Backend, Config, GatewayUse, TokenKey};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use template::{FUNCTIONS, document_grants, get, grants_of, report, string_at};

fn translated() -> Value {
    let path = std::env::var("CAFE_TRANSLATED_TEMPLATE").expect(
        "CAFE_TRANSLATED_TEMPLATE must name the translated template (scripts/test.sh makes it)",
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).expect("the translation is JSON")
}

/// Translated Lambda functions by binary: (logical id, resource).
fn lambda_functions(translated: &Value) -> BTreeMap<String, (String, Value)> {
    let mut found = BTreeMap::new();
    for (id, resource) in get(translated, &["Resources"])
        .and_then(Value::as_mapping)
        .expect("Resources")
    {
        if string_at(resource, &["Type"]).as_deref() != Some("AWS::Lambda::Function") {
            continue;
        }
        let id = id.as_str().expect("logical id").to_owned();
        let binary = string_at(resource, &["Metadata", "BuildProperties", "Binary"])
            .unwrap_or_else(|| format!("<{id} has no binary>"));
        found.insert(binary, (id, resource.clone()));
    }
    found
}

/// A translated value with each parameter replaced by its default and every other reference by
/// `<LogicalId>`.
fn placeholder(translated: &Value, value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    if let Some(logical) = string_at(value, &["Ref"]) {
        return match get(translated, &["Parameters", logical.as_str(), "Default"]) {
            Some(default) => placeholder(translated, default),
            None => format!("<{logical}>"),
        };
    }
    if let Some(text) = string_at(value, &["Fn::Sub"]) {
        // `${LockCache.Endpoint.Address}` → `<LockCache>`.
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some((before, after)) = rest.split_once("${") {
            out.push_str(before);
            let (reference, tail) = after.split_once('}').unwrap_or((after, ""));
            out.push_str(&format!("<{}>", reference.split('.').next().unwrap_or("")));
            rest = tail;
        }
        out.push_str(rest);
        return out;
    }
    match value {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn environment(translated: &Value, resource: &Value) -> BTreeMap<String, String> {
    get(resource, &["Properties", "Environment", "Variables"])
        .and_then(Value::as_mapping)
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| {
                    let name = k.as_str().unwrap_or_default().to_owned();
                    (name, placeholder(translated, v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What SAM adds to a role for the function's event sources: `sqs:SendMessage` on the queue an
/// event source mapping sends its failures to.
fn event_source_grants(function: &Value) -> Vec<template::Grant> {
    let events = get(function, &["Properties", "Events"])
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    events
        .values()
        .filter_map(|event| {
            let failure = get(event, &["Properties", "DestinationConfig", "OnFailure"])?;
            if string_at(failure, &["Type"]).as_deref() != Some("SQS") {
                return None;
            }
            let queue = get(failure, &["Destination", "Fn::GetAtt"])?;
            let logical = match queue {
                Value::String(dotted) => dotted.split('.').next()?.to_owned(),
                Value::Sequence(parts) => parts.first()?.as_str()?.to_owned(),
                _ => return None,
            };
            Some(template::Grant {
                action: "sqs:SendMessage".into(),
                resource: format!("queue/{logical}"),
                leading_keys: None,
            })
        })
        .collect()
}

#[test]
#[ignore = "needs the translated template: run by scripts/test.sh"]
fn every_function_is_configured_as_its_code_needs() {
    let translated = translated();
    let functions = lambda_functions(&translated);
    let mut problems = Vec::new();
    let expected: BTreeSet<String> = FUNCTIONS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain(["events-publisher".to_owned()])
        .collect();
    let deployed: BTreeSet<String> = functions.keys().cloned().collect();
    if deployed != expected {
        problems.push(format!("deployed {deployed:?}, the code has {expected:?}"));
    }
    for (name, key) in FUNCTIONS {
        let Some((id, resource)) = functions.get(*name) else {
            continue;
        };
        let mut env = environment(&translated, resource);
        // What Lambda itself sets.
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), id.clone());
        // A parameter: whatever the deployer gives, its pattern holds it to https.
        if let Some(url) = env.get_mut("PAYMENT_GATEWAY_URL")
            && url == "<PaymentGatewayUrl>"
            && gateway_url_must_be_https(&translated)
        {
            *url = "https://pg.example/v1".into();
        }
        let config = match Config::from_vars(*key, &|n| env.get(n).cloned()) {
            Ok(config) => config,
            Err(e) => {
                problems.push(format!("{name}: its deployed environment fails init: {e}"));
                continue;
            }
        };
        if !config.production || config.backend != Backend::Aws {
            problems.push(format!("{name}: not production on the AWS backend"));
        }
        if config.table_name != "<Table>" {
            problems.push(format!("{name}: TABLE_NAME is {:?}", config.table_name));
        }
        if config.redis_url.as_deref() != Some("rediss://<LockCache>:<LockCache>") {
            problems.push(format!(
                "{name}: REDIS_URL is {:?}, not the lock cache over TLS",
                config.redis_url
            ));
        }
        if config.redis_auth_secret_arn.as_deref() != Some("<LockCacheCredentials>") {
            problems.push(format!(
                "{name}: REDIS_AUTH_SECRET_ARN is {:?}, not the lock cache's user",
                config.redis_auth_secret_arn
            ));
        }
        // Exactly the functions that move money get the gateway and its secret; they start.
        let usage = template::gateway_use(name);
        let gateway_secret = env.get("PAYMENT_GATEWAY_SECRET_ARN").map(String::as_str);
        let want_gateway_secret =
            (usage == GatewayUse::MovesMoney).then_some("<PaymentGatewaySecretKey>");
        if gateway_secret != want_gateway_secret {
            problems.push(format!(
                "{name}: PAYMENT_GATEWAY_SECRET_ARN is {gateway_secret:?}, its code ({usage:?}) \
                 needs {want_gateway_secret:?}"
            ));
        }
        if let Err(e) = config.check_gateway(usage) {
            problems.push(format!("{name}: refuses to start: {e}"));
        }
        // Each function is given exactly the key secret its code reads: the private keyset
        // only to the signers, the public keys only to the verifiers.
        let signing = env.get("TOKEN_SIGNING_KEYS_ARN").map(String::as_str);
        let verifying = env.get("TOKEN_VERIFYING_KEYS_ARN").map(String::as_str);
        let (want_signing, want_verifying) = match key {
            TokenKey::Signs => (Some("<TokenSigningKeys>"), None),
            TokenKey::Verifies => (None, Some("<TokenVerifyingKeys>")),
            TokenKey::SignsAndVerifies => {
                (Some("<TokenSigningKeys>"), Some("<TokenVerifyingKeys>"))
            }
            TokenKey::NotUsed => (None, None),
        };
        if (signing, verifying) != (want_signing, want_verifying) {
            problems.push(format!(
                "{name}: TOKEN_SIGNING_KEYS_ARN is {signing:?} and TOKEN_VERIFYING_KEYS_ARN is \
                 {verifying:?}; its code ({key:?}) needs {want_signing:?} and {want_verifying:?}"
            ));
        }
    }
    if let Some((_, publisher)) = functions.get("events-publisher") {
        let env = environment(&translated, publisher);
        if env.get("EVENT_BUS_NAME").map(String::as_str) != Some("<EventBus>") {
            problems.push(format!(
                "events-publisher: EVENT_BUS_NAME is {:?}",
                env.get("EVENT_BUS_NAME")
            ));
        }
    }
    report("the deployed environments and the code", problems);
}

#[test]
#[ignore = "needs the translated template: run by scripts/test.sh"]
fn every_role_holds_exactly_its_policy() {
    let translated = translated();
    let source = template::template();
    let sources = template::functions(&source);
    let mut problems = Vec::new();
    for (name, (id, resource)) in lambda_functions(&translated) {
        let Some(role) = get(
            resource.get("Properties").unwrap_or(&Value::Null),
            &["Role"],
        )
        .and_then(|r| get(r, &["Fn::GetAtt"]))
        .and_then(Value::as_sequence)
        .and_then(|parts| parts.first())
        .and_then(Value::as_str)
        .map(str::to_owned) else {
            problems.push(format!("{name}: its role is not one of the stack's"));
            continue;
        };
        let role = get(&translated, &["Resources", role.as_str()])
            .cloned()
            .unwrap_or(Value::Null);
        let documents: Vec<Value> = template::one_or_many(get(&role, &["Properties", "Policies"]))
            .iter()
            .filter_map(|p| p.get("PolicyDocument").cloned())
            .collect();
        let deployed = document_grants(&translated, &documents, &mut problems);
        let declared = match sources.get(&name) {
            Some((_, function)) => {
                let mut declared = grants_of(&source, function).unwrap_or_else(|found| {
                    problems.extend(found);
                    Vec::new()
                });
                declared.extend(event_source_grants(function));
                declared.sort();
                declared
            }
            None => Vec::new(),
        };
        if deployed != declared {
            problems.push(format!(
                "{name} ({id}): the role grants {deployed:?}, template.yaml declares {declared:?}"
            ));
        }
        let mut allowed = vec![
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        ];
        if get(&resource, &["Properties", "VpcConfig"]).is_some() {
            allowed.push("arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole");
        }
        // The stream's consumer: SAM adds the stream-reading role for its DynamoDB event.
        if name == "events-publisher" {
            allowed.push("arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole");
        }
        for managed in template::one_or_many(get(&role, &["Properties", "ManagedPolicyArns"])) {
            let arn = placeholder(&translated, &managed).replace("<AWS::Partition>", "aws");
            if !allowed.contains(&arn.as_str()) {
                problems.push(format!("{name}: unexpected managed policy {arn}"));
            }
        }
    }
    report("the deployed roles and template.yaml's policies", problems);
}

#[test]
#[ignore = "needs the translated template: run by scripts/test.sh"]
fn the_deployed_table_is_the_table_the_code_uses() {
    report(
        "the deployed table and the code's table_spec()",
        template::table_problems(&translated()),
    );
}

fn timeout_of(resource: &Value) -> Option<u64> {
    get(resource, &["Properties", "Timeout"]).and_then(Value::as_u64)
}

#[test]
#[ignore = "needs the translated template: run by scripts/test.sh"]
fn every_timeout_covers_its_function_s_budget() {
    use std::time::Duration;
    let translated = translated();
    let functions = lambda_functions(&translated);
    let config = Config::default();
    let seconds = |name: &str| {
        functions
            .get(name)
            .and_then(|(_, r)| timeout_of(r))
            .map(Duration::from_secs)
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    // API Gateway answers 503 at 30 s whatever the function does: no HTTP function may plan
    // for more.
    for route in cafe::routes::ROUTES {
        if seconds(route.function) > Duration::from_secs(29) {
            problems.push(format!(
                "{}: longer than API Gateway's 30 s",
                route.function
            ));
        }
    }
    // A payment charges only with the charge budget left (else 503 before charging); its
    // timeout must leave that budget for the largest payment after the lock wait and a second
    // of reads.
    let largest =
        cafe::services::payments::charge_budget(&config, cafe::domain::order::MAX_PAYMENT_PARTS);
    let before_charging = config.lock.max_wait + Duration::from_secs(1);
    if seconds("payment-create") < largest + before_charging {
        problems.push(format!(
            "payment-create: {:?} cannot fit a {}-part payment ({largest:?} + {before_charging:?})",
            seconds("payment-create"),
            cafe::domain::order::MAX_PAYMENT_PARTS
        ));
    }
    // A paid order's cancellation must reach its durable write (the refunds after it may be
    // cut: the reconciler finishes them): lock wait, two reads and the transaction.
    let cancel = config.lock.max_wait + config.dependency_timeout * 3;
    if seconds("order-cancel") < cancel {
        problems.push(format!(
            "order-cancel: {:?} < {cancel:?}",
            seconds("order-cancel")
        ));
    }
    // The reconciler starts no attempt within its safety margin; one attempt (every part's
    // gateway calls, its reads and writes) must fit in that margin.
    let one_attempt = config.gateway_timeout * 5 + config.dependency_timeout * 4;
    if payment_reconcile::SAFETY_MARGIN < one_attempt {
        problems.push(format!(
            "payment-reconcile: a margin of {:?} does not cover one attempt ({one_attempt:?})",
            payment_reconcile::SAFETY_MARGIN
        ));
    }
    if seconds("payment-reconcile") <= payment_reconcile::SAFETY_MARGIN * 2 {
        problems.push("payment-reconcile: its timeout leaves no time to work".into());
    }
    if seconds("expire-withdrawals") <= expire_withdrawals::SAFETY_MARGIN * 2 {
        problems.push("expire-withdrawals: its timeout leaves no time to work".into());
    }
    if seconds("expire-orders") <= expire_orders::SAFETY_MARGIN * 2 {
        problems.push("expire-orders: its timeout leaves no time to work".into());
    }
    report("the deployed timeouts and the code's budgets", problems);
}

/// The template's `PaymentGatewayUrl` parameter admits only https URLs.
fn gateway_url_must_be_https(translated: &Value) -> bool {
    translated["Parameters"]["PaymentGatewayUrl"]["AllowedPattern"]
        .as_str()
        .is_some_and(|pattern| pattern.starts_with("^https://"))
}
