//! The module import graph of `src/`: read from the source (every
//! `crate::NAME` and `mmrun::NAME` path outside comments, names re-exported
//! by `lib.rs` counted as their module), printed, and held to the layering
//! `design.md` draws:
//!
//! - no cycle among the top-level modules;
//! - kernels (and the expression engine and generators they use) never
//!   reach `os`, `coordinator`, `worker`, `commands` or `cli`;
//! - `layout`, `plan` and `error` reach nothing that does I/O or runs
//!   work;
//! - the library never reaches `cli` (only `main` and the Python
//!   extension, which compiles the command line, do).
//!
//! `cargo test --test integration layering -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `text` without `//` comments (line and doc comments).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("http://…") is rare in src/
            // and would only hide a path, never invent one.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names after `crate::` / `mmrun::` in `text`: `a` for `crate::a::b`,
/// each of `a, b` for `crate::{a, b::c}`.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["crate::", "mmrun::"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(name);
                }
            } else {
                out.push(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
    }
    out
}

/// The import graph of the top-level modules of `src`.
fn graph(src: &Path) -> Graph {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).expect("read src") {
        let p = entry.expect("entry").path();
        let name = p.file_stem().expect("name").to_string_lossy().into_owned();
        if p.is_dir() || p.extension().is_some_and(|e| e == "rs") {
            modules.insert(name);
        }
    }
    // `pub use module::{A, B}` in lib.rs: `crate::A` is `module`.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let mut reexports = BTreeMap::new();
    for line in strip_comments(&lib).split(';') {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for n in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            reexports.insert(n.trim().to_string(), module.trim().to_string());
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("component");
        let from = Path::new(first.as_os_str())
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let text = strip_comments(&std::fs::read_to_string(&f).expect("read"));
        let node = g.entry(from.clone()).or_default();
        for name in paths(&text) {
            let to = if modules.contains(&name) {
                Some(name)
            } else {
                reexports.get(&name).cloned()
            };
            if let Some(to) = to.filter(|t| *t != from) {
                node.insert(to);
            }
        }
    }
    g
}

/// A cycle in `g`, if it has one, as the modules around it.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).expect("on stack");
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(g, m, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(g, n, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Every module `from` reaches, directly or not.
fn reach(g: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        for m in g.get(&n).into_iter().flatten() {
            if seen.insert(m.clone()) {
                todo.push(m.clone());
            }
        }
    }
    seen
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_module_graph_has_no_cycle_and_keeps_its_layers() {
    let g = graph(&src());
    for (from, to) in &g {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("{from} -> {}", to.join(" "));
    }
    // The parser sees the graph: a few edges every tree has.
    for (from, to) in [
        ("coordinator", "worker"),
        ("cli", "commands"),
        ("kernels", "layout"),
    ] {
        assert!(g[from].contains(to), "{from} -> {to} not found: {g:?}");
    }
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
    let mut broken = Vec::new();
    let low: [(&str, &[&str]); 6] = [
        (
            "kernels",
            &["os", "coordinator", "worker", "commands", "cli"],
        ),
        ("expr", &["os", "coordinator", "worker", "commands", "cli"]),
        ("rng", &["os", "coordinator", "worker", "commands", "cli"]),
        (
            "layout",
            &["os", "coordinator", "worker", "journal", "commands", "cli"],
        ),
        (
            "plan",
            &["os", "coordinator", "worker", "journal", "commands", "cli"],
        ),
        (
            "error",
            &["os", "coordinator", "worker", "journal", "commands", "cli"],
        ),
    ];
    for (module, never) in low {
        let reached = reach(&g, module);
        for n in never {
            if reached.contains(*n) {
                broken.push(format!("{module} reaches {n}"));
            }
        }
    }
    for module in g.keys() {
        if !["cli", "main", "python"].contains(&module.as_str())
            && reach(&g, module).contains("cli")
        {
            broken.push(format!("the library module {module} reaches cli"));
        }
    }
    assert!(broken.is_empty(), "layering broken: {}", broken.join("; "));
}

#[test]
fn the_graph_reader_finds_cycles_and_grouped_paths() {
    assert_eq!(
        paths("use crate::{a, b::c};\nlet x = mmrun::d::E; notcrate::f"),
        ["a", "b", "d"]
    );
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
}

/// Every `MMRUN_*` variable the source passes to workers is in the
/// protocol's one description, `src/worker/protocol.rs`.
#[test]
fn every_worker_variable_is_in_the_protocol_description() {
    // The command's own settings, not part of what workers get.
    const NOT_PROTOCOL: [&str; 4] = [
        "MMRUN_LOG",
        "MMRUN_WORKER_EXE",
        "MMRUN_DEFAULT_WORKERS",
        "MMRUN_PHILOX",
    ];
    let protocol = std::fs::read_to_string(src().join("worker/protocol.rs")).expect("protocol.rs");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\"MMRUN_") {
            rest = &rest[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `"MMRUN_"` alone is a prefix test, not a variable.
            if name.len() > "MMRUN_".len() {
                names.insert(name);
            }
        }
    }
    assert!(names.contains("MMRUN_ROW_START"), "found {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !NOT_PROTOCOL.contains(&n.as_str()))
        .filter(|n| !protocol.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in src/worker/protocol.rs: {missing:?}"
    );
}
