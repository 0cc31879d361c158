//! Argo CD resource hooks, as repositories written for Argo CD declare them:
//! `argocd.argoproj.io/hook: PreSync|Sync|PostSync|SyncFail` (several,
//! comma-separated; `Skip` leaves the object out) and
//! `argocd.argoproj.io/hook-delete-policy: HookSucceeded|BeforeHookCreation|HookFailed`
//! (BeforeHookCreation when absent, as Argo CD). A hook is not part of the
//! application's apply set: it is created when its phase comes, waited for,
//! never pruned, and deleted as its policy says. This module reads the
//! annotations; [`super::hook_run`] runs the hooks.

use serde::{Deserialize, Serialize};

use super::problem::PlanProblem;
use crate::manifest::{Manifest, ObjectKey, Origin};

use crate::source::order::{HOOK_ANNOTATION, sync_wave};
pub const DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HookPhase {
    /// Before the first wave; a failure stops the sync before anything else is written.
    PreSync,
    /// With the waves, after the objects of its own wave.
    Sync,
    /// Once the application is healthy after the last wave.
    PostSync,
    /// When the sync fails.
    SyncFail,
}

impl HookPhase {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "PreSync" => HookPhase::PreSync,
            "Sync" => HookPhase::Sync,
            "PostSync" => HookPhase::PostSync,
            "SyncFail" => HookPhase::SyncFail,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::Sync => "Sync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        }
    }
}

/// When a hook object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeletePolicy {
    HookSucceeded,
    BeforeHookCreation,
    HookFailed,
}

impl DeletePolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeletePolicy::HookSucceeded => "HookSucceeded",
            DeletePolicy::BeforeHookCreation => "BeforeHookCreation",
            DeletePolicy::HookFailed => "HookFailed",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "HookSucceeded" => DeletePolicy::HookSucceeded,
            "BeforeHookCreation" => DeletePolicy::BeforeHookCreation,
            "HookFailed" => DeletePolicy::HookFailed,
            _ => return None,
        })
    }
}

/// One hook as git declares it.
#[derive(Debug, Clone)]
pub struct Hook {
    pub manifest: Manifest,
    pub phases: Vec<HookPhase>,
    pub delete_policies: Vec<DeletePolicy>,
    pub wave: i64,
}

impl Hook {
    /// The name it is created under, or (for `generateName`) its prefix.
    pub fn planned(&self) -> PlannedHook {
        let m = &self.manifest;
        let generate_name = m.name().is_empty();
        let mut key = m.key();
        if generate_name {
            key.name = m.object["metadata"]["generateName"]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
        PlannedHook {
            key,
            api_version: m.api_version().to_string(),
            origin: m.origin.clone(),
            phases: self.phases.clone(),
            wave: self.wave,
            delete_policies: self.delete_policies.clone(),
            generate_name,
        }
    }

    pub fn runs_in(&self, phase: HookPhase) -> bool {
        self.phases.contains(&phase)
    }
}

/// A hook as a plan lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedHook {
    /// For a `generateName` hook, the name is the prefix.
    pub key: ObjectKey,
    pub api_version: String,
    pub origin: Origin,
    pub phases: Vec<HookPhase>,
    pub wave: i64,
    pub delete_policies: Vec<DeletePolicy>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate_name: bool,
}

/// Splits hooks from the objects a sync applies. Objects annotated `Skip`
/// are in neither. Annotations relbot cannot honour are problems: guessing
/// would run a hook at the wrong time or never. Takes the manifests by
/// value: the objects a sync applies are moved, never copied.
pub fn split(manifests: Vec<Manifest>) -> (Vec<Hook>, Vec<Manifest>, Vec<PlanProblem>) {
    let mut hooks = Vec::new();
    let mut rest = Vec::new();
    let mut problems = Vec::new();
    for m in manifests {
        let Some(value) = m.annotation(HOOK_ANNOTATION) else {
            rest.push(m);
            continue;
        };
        let problem = |message: String| PlanProblem {
            key: Some(m.key()),
            origin: Some(m.origin.clone()),
            message,
        };
        let listed = words(value);
        if listed.contains(&"Skip") {
            continue;
        }
        let mut phases = Vec::new();
        for word in &listed {
            match HookPhase::parse(word) {
                Some(phase) if !phases.contains(&phase) => phases.push(phase),
                Some(_) => {}
                None => problems.push(problem(format!(
                    "{HOOK_ANNOTATION}: {word:?} is not a hook relbot runs (PreSync, Sync, PostSync, SyncFail or Skip)"
                ))),
            }
        }
        let mut delete_policies = Vec::new();
        for word in m
            .annotation(DELETE_POLICY_ANNOTATION)
            .map(words)
            .unwrap_or_default()
        {
            match DeletePolicy::parse(word) {
                Some(policy) => delete_policies.push(policy),
                None => problems.push(problem(format!(
                    "{DELETE_POLICY_ANNOTATION}: {word:?} is not a delete policy (HookSucceeded, BeforeHookCreation or HookFailed)"
                ))),
            }
        }
        if delete_policies.is_empty() {
            delete_policies.push(DeletePolicy::BeforeHookCreation);
        }
        if m.name().is_empty() && m.object["metadata"]["generateName"].as_str().is_none() {
            problems.push(problem(
                "a hook needs metadata.name or metadata.generateName".into(),
            ));
            continue;
        }
        if phases.is_empty() {
            continue;
        }
        hooks.push(Hook {
            // A bad wave counts as 0; validation reports it first.
            wave: sync_wave(&m).unwrap_or(0),
            manifest: m,
            phases,
            delete_policies,
        });
    }
    // In the order they run: by their first phase, then wave.
    for hook in &mut hooks {
        hook.phases.sort();
    }
    hooks.sort_by_key(|h| (h.phases[0], h.wave));
    (hooks, rest, problems)
}

fn words(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// How one hook ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "detail")]
pub enum HookOutcome {
    Succeeded,
    /// What failed: the object's own condition, or why it could not be created.
    Failed(String),
    /// The sync stopped before its phase; says why.
    NotRun(String),
}

/// One hook in a sync result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRun {
    /// The object's name as created (for `generateName`, the generated one).
    pub key: ObjectKey,
    pub origin: Origin,
    pub phase: HookPhase,
    pub wave: i64,
    #[serde(flatten)]
    pub outcome: HookOutcome,
    /// Deleted after running, as its delete policy asks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(name: &str, annotations: serde_json::Value) -> Manifest {
        Manifest {
            object: json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": "shop", "annotations": annotations}}),
            origin: Origin {
                file: "shop/hooks.yaml".into(),
                line: 3,
            },
        }
    }

    #[test]
    fn hooks_are_split_from_the_apply_set_with_argo_cd_defaults() {
        let plain = Manifest {
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            origin: Origin {
                file: "c.yaml".into(),
                line: 1,
            },
        };
        let manifests = vec![
            plain,
            m("migrate", json!({HOOK_ANNOTATION: "PreSync"})),
            m(
                "notify",
                json!({HOOK_ANNOTATION: "PostSync, SyncFail",
                    DELETE_POLICY_ANNOTATION: "HookSucceeded,HookFailed",
                    "argocd.argoproj.io/sync-wave": "3"}),
            ),
            m("skipped", json!({HOOK_ANNOTATION: "Skip"})),
        ];
        let (hooks, rest, problems) = split(manifests);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].name(), "c");
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].phases, [HookPhase::PreSync]);
        assert_eq!(hooks[0].delete_policies, [DeletePolicy::BeforeHookCreation]);
        assert_eq!(hooks[0].wave, 0);
        assert_eq!(hooks[1].phases, [HookPhase::PostSync, HookPhase::SyncFail]);
        assert_eq!(
            hooks[1].delete_policies,
            [DeletePolicy::HookSucceeded, DeletePolicy::HookFailed]
        );
        assert_eq!(hooks[1].wave, 3);
    }

    #[test]
    fn unknown_words_are_problems_naming_file_and_object() {
        let (hooks, _, problems) = split(vec![m(
            "x",
            json!({HOOK_ANNOTATION: "PreSync,Later", DELETE_POLICY_ANNOTATION: "Never"}),
        )]);
        assert_eq!(hooks.len(), 1, "the known phase still counts");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 2);
        assert!(
            text[0].starts_with("shop/hooks.yaml:3: Job.batch shop/x: ")
                && text[0].contains("\"Later\""),
            "{text:?}"
        );
        assert!(text[1].contains("\"Never\""), "{text:?}");
    }

    #[test]
    fn generate_name_hooks_are_planned_under_their_prefix() {
        let mut hook = m("", json!({HOOK_ANNOTATION: "Sync"}));
        hook.object["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        hook.object["metadata"]["generateName"] = json!("smoke-");
        let (hooks, _, problems) = split(vec![hook]);
        assert!(problems.is_empty());
        let planned = hooks[0].planned();
        assert!(planned.generate_name);
        assert_eq!(planned.key.to_string(), "Job.batch shop/smoke-");
    }
}
