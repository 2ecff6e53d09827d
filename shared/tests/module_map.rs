//! The module map at the top of `shared/src/lib.rs` is true: every module of the crate is on it,
//! and every module imports only what its line says it may (so imports point one way, down, and
//! no two modules import each other).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The unit a module path is judged as: a top-level module, or `services::<use case>`.
fn unit(path: &str) -> String {
    let mut parts = path.split("::");
    let top = parts.next().unwrap_or_default();
    match (top, parts.next()) {
        ("services", Some(case)) => format!("services::{case}"),
        _ => top.to_owned(),
    }
}

/// The module a source file is, as a path (`store::memory::orders`, `crate` for lib.rs).
fn module_of(file: &Path) -> String {
    let relative = file
        .strip_prefix(SRC)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return "crate".into();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers that follow `prefix` in `code`, with the next one after `::` when there is.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at + prefix.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        found.push(&tail[..end]);
        rest = &tail[end..];
    }
    found
}

/// What each unit of the crate imports from the others (test modules left out).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = unit(&module_of(&file));
        let source = std::fs::read_to_string(&file).expect("readable");
        let code: String = source
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut targets: Vec<String> = paths_after(&code, "crate::")
            .into_iter()
            .map(unit)
            .collect();
        // `use crate::{a::X, b::{Y, Z}}`
        for group in code.split("use crate::{").skip(1) {
            let body = group.split(';').next().unwrap_or_default();
            for word in body.split([',', '{', ' ', '\n']) {
                if let Some((module, _)) = word.trim().split_once("::") {
                    targets.push(module.to_owned());
                }
            }
        }
        for target in targets {
            let first = target.chars().next().unwrap_or('A');
            // `crate::Error`, `crate::App`: re-exports of `error` and `app`.
            let target = match target.as_str() {
                "Error" | "Result" => "error".to_owned(),
                "App" => "app".to_owned(),
                _ if first.is_ascii_uppercase() => continue,
                _ => target,
            };
            if target != from && !target.is_empty() {
                graph.entry(from.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// One line of the map: the modules it is about, what they may import, and its section.
struct MapLine {
    modules: Vec<String>,
    allowed: BTreeSet<String>,
    layers_below: bool,
    section: usize,
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|name| name.trim_end_matches("/").to_owned())
        .collect()
}

/// The map, read from the `//!` lines of lib.rs: bullets `- \`m\`[, \`n\`]: … Imports …`.
fn module_map() -> Vec<MapLine> {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).expect("lib.rs");
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "# Module map")
        .expect("lib.rs has a module map");
    let mut bullets: Vec<(String, usize)> = Vec::new();
    let mut section = 0;
    for line in &doc[start + 1..] {
        if let Some(bullet) = line.strip_prefix("- ") {
            bullets.push((bullet.to_owned(), section));
        } else if line.is_empty() {
            continue;
        } else if line.ends_with(':') {
            section += 1;
        } else if let Some((text, _)) = bullets.last_mut() {
            text.push(' ');
            text.push_str(line);
        }
    }
    bullets
        .into_iter()
        .map(|(text, section)| {
            let (head, rest) = text.split_once(": ").expect("`module`: what it owns");
            let imports = rest.split("Import").nth(1).unwrap_or_default();
            MapLine {
                modules: backticked(head),
                allowed: backticked(imports).into_iter().map(|m| unit(&m)).collect(),
                layers_below: imports.contains("the layers below"),
                section,
            }
        })
        .collect()
}

#[test]
fn every_module_of_the_crate_is_on_the_map() {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).expect("lib.rs");
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let services: BTreeSet<String> = std::fs::read_to_string(format!("{SRC}/services/mod.rs"))
        .expect("services/mod.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| format!("services::{}", m.trim_end_matches(';')))
        .collect();
    let mapped: BTreeSet<String> = module_map()
        .into_iter()
        .flat_map(|line| line.modules)
        .collect();
    let missing: Vec<&String> = declared
        .iter()
        .filter(|m| *m != "services")
        .chain(&services)
        .filter(|m| !mapped.contains(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "not on lib.rs's module map: {missing:?}"
    );
}

#[test]
fn module_imports_point_down() {
    let map = module_map();
    let line_of = |module: &str| map.iter().find(|l| l.modules.iter().any(|m| m == module));
    let mut wrong = Vec::new();
    for (module, targets) in imports() {
        if module == "crate" {
            continue;
        }
        let Some(line) = line_of(&module) else {
            wrong.push(format!("{module} is not on the map"));
            continue;
        };
        for target in targets {
            let below =
                line.layers_below && line_of(&target).is_some_and(|t| t.section < line.section);
            if !line.allowed.contains(&target) && !below {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the module map of lib.rs does not allow: {wrong:#?}"
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = imports();
    // Depth-first search for a cycle through any unit.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "modules importing in a circle: {cycle:?}");
    }
}
