//! GitHub Actions workflows are valid YAML with the fields GitHub requires,
//! every `${{ steps.<id> }}` names a step that exists, and every `relbot`
//! flag they use is one the CLI accepts.

mod ship_support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use ship_support::{read, relbot_bin, repo_root};

fn workflows() -> Vec<(String, Value)> {
    let dir = repo_root().join(".github/workflows");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read .github/workflows") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read workflow");
        let value: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
        found.push((name, value));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(found.len() >= 2, "expected ci.yml and release-example.yml");
    found
}

/// The step ids named by `steps.<id>.` in expressions of `text`.
fn referenced_step_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (at, _) in text.match_indices("steps.") {
        let rest = &text[at + "steps.".len()..];
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if rest[id.len()..].starts_with('.') && !id.is_empty() {
            ids.insert(id);
        }
    }
    ids
}

#[test]
fn ship_workflows_have_the_fields_github_requires() {
    for (name, workflow) in workflows() {
        let on = workflow
            .get("on")
            .unwrap_or_else(|| panic!("{name}: no `on:` (triggers)"));
        assert!(
            on.is_string() || on.is_array() || on.is_object(),
            "{name}: `on` must name events"
        );
        let jobs = workflow["jobs"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no `jobs:` map"));
        assert!(!jobs.is_empty(), "{name}: no jobs");
        for (job_id, job) in jobs {
            let at = format!("{name}: jobs.{job_id}");
            if job.get("uses").is_some() {
                continue; // a reusable-workflow call has neither runs-on nor steps
            }
            let runs_on = job
                .get("runs-on")
                .unwrap_or_else(|| panic!("{at}: no runs-on"));
            assert!(
                runs_on.is_string() || runs_on.is_array() || runs_on.is_object(),
                "{at}: runs-on"
            );
            if let Some(needs) = job.get("needs") {
                let needs: Vec<&str> = match needs {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("{at}: needs must be a job id or a list"),
                };
                for need in needs {
                    assert!(jobs.contains_key(need), "{at}: needs unknown job {need}");
                }
            }
            let steps = job["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: no steps list"));
            assert!(!steps.is_empty(), "{at}: no steps");
            let mut ids = BTreeSet::new();
            for (i, step) in steps.iter().enumerate() {
                let here = format!("{at}.steps[{i}]");
                let uses = step.get("uses").and_then(Value::as_str);
                let run = step.get("run").and_then(Value::as_str);
                assert!(
                    uses.is_some() != run.is_some(),
                    "{here}: a step has exactly one of `uses` or `run`"
                );
                if let Some(uses) = uses {
                    let (action, version) = uses
                        .split_once('@')
                        .unwrap_or_else(|| panic!("{here}: `uses: {uses}` pins no version"));
                    assert!(
                        action.split('/').count() >= 2 && !version.is_empty(),
                        "{here}: `uses: {uses}` is not owner/repo@ref"
                    );
                } else {
                    assert!(step.get("with").is_none(), "{here}: `with` needs `uses`");
                }
                if let Some(id) = step.get("id").and_then(Value::as_str) {
                    assert!(ids.insert(id.to_string()), "{here}: duplicate step id {id}");
                }
            }
            let job_text = serde_json::to_string(job).expect("JSON");
            for id in referenced_step_ids(&job_text) {
                assert!(
                    ids.contains(&id),
                    "{at}: refers to steps.{id}, which no step has as id"
                );
            }
        }
    }
}

#[test]
fn ship_workflows_ci_runs_fmt_clippy_and_tests() {
    let ci: Value = serde_saphyr::from_str(&read(".github/workflows/ci.yml")).expect("ci.yml");
    let scripts: Vec<String> = ci["jobs"]
        .as_object()
        .expect("jobs")
        .values()
        .flat_map(|j| j["steps"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect();
    // The CI runs `.ci/run`; what it runs is checked there.
    let mut text = scripts.join("\n");
    if text.contains(".ci/run") {
        text.push_str(&read(".ci/run"));
    }
    for needed in [
        "cargo fmt",
        "--check",
        "cargo clippy",
        "-D warnings",
        "scripts/test",
    ] {
        assert!(text.contains(needed), "CI does not run `{needed}`");
    }
    assert!(read("scripts/test").contains("cargo nextest run"));
}

#[test]
fn ship_workflows_release_example_tags_builds_arm64_and_notifies() {
    let text = read(".github/workflows/release-example.yml");
    let workflow: Value = serde_saphyr::from_str(&text).expect("release-example.yml");
    assert!(
        workflow["on"]["push"]["branches"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b == "main"))
    );
    let steps = workflow["jobs"]["release"]["steps"]
        .as_array()
        .expect("steps");
    let checkout = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("a checkout step");
    assert_eq!(
        checkout["with"]["fetch-depth"], 0,
        "the tagger needs full history (it refuses shallow clones)"
    );
    let build = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action@"))
        })
        .expect("a build-push step");
    assert_eq!(build["with"]["platforms"], "linux/arm64");
    assert_eq!(build["with"]["push"], true);
    assert!(
        text.contains("/webhooks/registry/"),
        "notifies relbot's registry webhook"
    );

    // Every flag the workflow passes to `relbot tag` exists.
    let help = Command::new(relbot_bin())
        .args(["tag", "--help"])
        .output()
        .expect("relbot tag --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let script: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .filter(|r| r.contains("relbot tag"))
        .collect();
    assert!(script.contains("--push origin"));
    let flags: BTreeSet<&str> = script
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .collect();
    for flag in flags {
        assert!(help.contains(flag), "relbot tag has no flag {flag}");
    }
}

#[test]
fn ship_workflows_step_reference_scanner() {
    let ids = referenced_step_ids("${{ steps.tag.outputs.next }} steps.x-y.outputs steps. nosteps");
    assert_eq!(ids, ["tag", "x-y"].iter().map(|s| s.to_string()).collect());
}
