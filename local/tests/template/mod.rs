//! Reading `template.yaml` in tests: the short-form tags become the long form, so every lookup
//! sees one shape; the functions by their binary; each function's environment.

#![allow(dead_code)]

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
