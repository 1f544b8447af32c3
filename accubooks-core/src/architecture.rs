//! The rule of the core's modules, checked on its sources: dependencies
//! point one way, `http → usecases → features → ledger → {idempotency, jobs}
//! → db`, over a base that every layer may use. The only loop allowed is
//! the handle's: `http` and `usecases` reach the [`AccuBooks`] handle of
//! `app`, which builds them.
//!
//! A module may use modules of its own layer or below. A new top-level
//! module must be given a layer here, so the rule outlives the change that
//! adds it.
//!
//! [`AccuBooks`]: crate::AccuBooks

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module of the crate, by layer, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "clock",
            "config",
            "error",
            "lifecycle",
            "limits",
            "metadata",
            "money",
            "organization",
            "paging",
            "resources",
            "sealed",
            "telemetry",
            "throttle",
        ],
    ),
    ("observation", &["deps", "health", "metrics"]),
    ("connections", &["connections", "db", "saas"]),
    ("kernel services", &["events", "idempotency", "jobs"]),
    ("books kernel", &["ledger"]),
    (
        "features",
        &[
            "banking",
            "identity",
            "invoicing",
            "payroll",
            "reporting",
            "retention",
            "webhooks",
        ],
    ),
    ("use cases", &["usecases"]),
    ("doors", &["http"]),
    ("handle", &["app"]),
];

/// Modules that may name the handle although it sits above them.
const HANDLE_USERS: &[&str] = &["http", "usecases"];

/// Top-level files that only declare the crate and this check.
const OUTSIDE: &[&str] = &["lib", "architecture"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// `crate::name` references of every top-level module, from its files'
/// code (comments are not dependencies).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("the sources are readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let first = relative.components().next().expect("a component");
            let module = Path::new(first.as_os_str())
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("a source is UTF-8");
            let used = graph.entry(module.clone()).or_default();
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for (at, _) in code.match_indices("crate::") {
                    let preceded = code[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_');
                    if preceded {
                        continue; // `accubooks_crate::`, not ours
                    }
                    let name: String = code[at + "crate::".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c == &'_')
                        .collect();
                    if !name.is_empty() && name != module {
                        used.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = imports()
        .into_keys()
        .filter(|module| layer_of(module).is_none() && !OUTSIDE.contains(&module.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "give these modules a layer in architecture.rs: {unplaced:?}"
    );
}

#[test]
fn dependencies_point_down() {
    let mut wrong = Vec::new();
    for (module, used) in imports() {
        let Some(from) = layer_of(&module) else {
            continue;
        };
        for target in used {
            let Some(to) = layer_of(&target) else {
                continue;
            };
            let handle = target == "app" && HANDLE_USERS.contains(&module.as_str());
            if to > from && !handle {
                wrong.push(format!(
                    "{module} ({}) uses {target} ({})",
                    LAYERS[from].0, LAYERS[to].0
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_loop_but_the_handle_s() {
    let graph = imports();
    // Depth-first search for a cycle, ignoring the arrows into the handle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        loops: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|m| *m == module) {
            loops.push(format!("{} -> {module}", path[start..].join(" -> ")));
            return;
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            if next != "app" {
                visit(next, graph, path, done, loops);
            }
        }
        path.pop();
    }
    let mut loops = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut loops);
    }
    assert!(loops.is_empty(), "module loops:\n{}", loops.join("\n"));
}
