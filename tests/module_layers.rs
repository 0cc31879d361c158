//! The module map holds: every `crate::` import points down the floors of
//! docs/architecture.md, and no two modules of one folder, at any depth,
//! import each other (directly or round a loop). Read from the source, so a new upward import
//! fails here with the file and the line that made it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Floors from the bottom; a module may import its own floor's siblings
/// (no cycles, checked below) and anything lower, never higher.
const FLOORS: &[(&str, u8)] = &[
    ("manifest", 0),
    ("image", 0),
    ("tls", 0),
    ("progress", 0),
    ("error_chain", 0),
    ("yaml_message", 0),
    ("dns_name", 0),
    ("redact", 0),
    ("revision", 0),
    ("config", 1),
    ("cluster", 1),
    ("source", 2),
    ("sync", 3),
    ("release", 3),
    ("server", 4),
    ("cli", 5),
];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/server/http.rs` → ["server", "http"]; `src/sync/mod.rs` → ["sync"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code outside `#[cfg(test)]` modules: tests may reach anywhere.
fn production_code(text: &str) -> &str {
    text.split("#[cfg(test)]\nmod ").next().unwrap_or(text)
}

/// Each `crate::a::b::…` path in `text` as (line, ["a", "b", …]): the
/// lower-case segments, so a capitalised item ends it.
fn crate_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let segments = module_segments(rest);
            if !segments.is_empty() {
                found.push((index + 1, segments));
            }
        }
    }
    found
}

/// The leading `a::b::…` of `text` while each segment is a lower-case name.
fn module_segments(text: &str) -> Vec<String> {
    text.split("::")
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty() && s.chars().next().unwrap().is_lowercase())
        .collect()
}

/// Each `super::x::…` (or `super::super::x`) as (how many levels up, ["x", …]).
fn super_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let mut rest = line.split("//").next().unwrap_or("");
        while let Some(at) = rest.find("super::") {
            let mut ups = 0;
            rest = &rest[at..];
            while let Some(after) = rest.strip_prefix("super::") {
                ups += 1;
                rest = after;
            }
            let segments = module_segments(rest);
            if !segments.is_empty() {
                found.insert((ups, segments));
            }
        }
    }
    found.into_iter().collect()
}

struct Source {
    module: Vec<String>,
    file: PathBuf,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            Source {
                module: module_path(&src, &file),
                code: production_code(&text).to_string(),
                file,
            }
        })
        .filter(|s| !matches!(s.module[0].as_str(), "main" | "lib"))
        .collect()
}

#[test]
fn every_module_is_on_a_floor() {
    let unplaced: BTreeSet<String> = sources()
        .iter()
        .map(|s| s.module[0].clone())
        .filter(|m| floor(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from FLOORS (and from docs/architecture.md): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_one_above_it() {
    let mut upward = Vec::new();
    for source in sources() {
        let Some(own) = floor(&source.module[0]) else {
            continue;
        };
        for (line, path) in crate_paths(&source.code) {
            if let Some(target) = floor(&path[0])
                && target > own
            {
                upward.push(format!(
                    "{}:{line} imports crate::{}",
                    source.file.display(),
                    path.join("::")
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

/// Module-to-module edges between the children of one folder, at every
/// depth: `release::github::clients` naming `super::transport` is the edge
/// clients → transport inside `release::github`; `source::render` naming
/// `crate::sync::plan` is the edge source → sync between top-level modules.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources() {
        let me = &source.module;
        let mut targets: Vec<Vec<String>> = crate_paths(&source.code)
            .into_iter()
            .map(|(_, path)| path)
            .collect();
        // A file's `super` is its folder's module (`mod.rs` is the folder's own).
        for (ups, path) in super_paths(&source.code) {
            if let Some(base) = me.len().checked_sub(ups) {
                targets.push(me[..base].iter().chain(&path).cloned().collect());
            }
        }
        for target in targets {
            let shared = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
            // An ancestor of this module, or one of its own children: not a sibling.
            if shared == target.len() || shared == me.len() {
                continue;
            }
            edges
                .entry(me[..=shared].join("::"))
                .or_default()
                .insert(target[..=shared].join("::"));
        }
    }
    edges
}

fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(node) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_import_cycles() {
    let edges = edges();
    let cycles: Vec<String> = edges
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
        .filter(|(from, to)| reaches(&edges, to, from))
        .map(|(from, to)| format!("{from} → {to} (and back)"))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_sees_paths_and_siblings() {
    let code = "use crate::sync::plan::{Action};\nuse super::read::X;\n// crate::server::no\n";
    assert_eq!(
        crate_paths(code),
        vec![(1, vec!["sync".to_string(), "plan".to_string()])]
    );
    assert_eq!(super_paths(code), vec![(1, vec!["read".to_string()])]);
    assert_eq!(
        super_paths("use super::super::health::X;"),
        vec![(2, vec!["health".to_string()])]
    );
}
