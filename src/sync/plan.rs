//! A plan: what a sync would do to one application, object by object, in
//! the order it would do it. Built offline (every object "would create",
//! nothing consulted) or against a live cluster (see [`super::live`]).

use serde::{Deserialize, Serialize};

use super::hooks::{self, PlannedHook};
use super::inventory::PRUNE_ANNOTATION;
use super::problem::PlanProblem;
use crate::config::Application;
use crate::manifest::{Manifest, ObjectKey, Origin};
use crate::source::order::{SyncOrder, sync_order};

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// An immutable field changed: the object must be deleted and created.
    Recreate,
    Prune,
}

impl Action {
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Recreate => "recreate",
            Action::Prune => "prune",
        }
    }

    /// What was done: `created`, `re-created`… (a run's report and the
    /// status page say it the same way).
    pub fn past_tense(&self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Recreate => "re-created",
            Action::Prune => "pruned",
            Action::Unchanged => "unchanged",
        }
    }
}

/// Why the action is needed; tells "git changed" apart from "the cluster
/// drifted", which `selfHeal: false` treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Not in the cluster yet.
    Missing,
    /// Git differs from what relbot last applied.
    ChangedInGit,
    /// Git is what relbot last applied, but someone changed the live object.
    Drift,
    /// Exists in the cluster without any application's tracking: relbot
    /// takes it over.
    Adopt,
    /// relbot applied it for this application, and git no longer has it.
    NoLongerInGit,
    /// Equal to git.
    InSync,
}

/// How much the server vouched for this entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Validation {
    /// A server-side dry-run accepted it (and the diff comes from it).
    ServerValidated,
    /// Its CRD or namespace is created by this same plan, so the server
    /// cannot validate it yet.
    NotServerValidated,
    /// Its CRD is created by this same plan: checked here against that CRD's
    /// schema; what only the server can evaluate is listed in its notes.
    SchemaChecked,
    /// No cluster was consulted at all.
    Offline,
    /// Decided from the listed live object alone (unchanged, prune), or left
    /// to the apply itself to validate (a real sync skips dry-runs).
    NotNeeded,
}

/// One entry of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub key: ObjectKey,
    pub api_version: String,
    /// Where git declares it; absent for prunes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Where it goes in the sync. Plans call it `phase` in JSON, as they
    /// always have, for the scripts that read them.
    #[serde(rename = "phase")]
    pub order: SyncOrder,
    pub action: Action,
    pub reason: Reason,
    pub validation: Validation,
    /// Unified YAML diff of the fields relbot manages, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Why this change will not be carried out by a sync, if it will not
    /// (selfHeal off, prune protection, recreate not allowed…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Change {
    /// Whether a sync would write this object.
    pub fn writes(&self) -> bool {
        self.action != Action::Unchanged && self.held.is_none()
    }
}

/// Whether (and which) cluster a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum ClusterView {
    /// Planned against this API server.
    Live { server: String },
    /// No cluster was consulted; `reason` says why.
    Offline { reason: String },
}

/// Everything a sync would do to one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub application: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub cluster: ClusterView,
    /// In apply order; prunes last, in reverse apply order.
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<PlanProblem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Argo CD hooks a sync would run (not part of `changes`: they are
    /// created when their phase comes and never pruned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<PlannedHook>,
}

/// How many entries of each kind a plan has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCounts {
    pub create: usize,
    pub update: usize,
    pub recreate: usize,
    pub prune: usize,
    pub unchanged: usize,
    /// Changes a sync would leave alone (selfHeal off, protected…).
    pub held: usize,
    /// Changes the server could not check before the sync (see
    /// [`Validation::NotServerValidated`]); absent from older records.
    #[serde(default)]
    pub not_server_validated: usize,
    pub problems: usize,
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        let mut counts = PlanCounts {
            problems: self.problems.len(),
            ..Default::default()
        };
        for change in &self.changes {
            if change.held.is_some() {
                counts.held += 1;
            }
            if change.validation == Validation::NotServerValidated {
                counts.not_server_validated += 1;
            }
            match change.action {
                Action::Create => counts.create += 1,
                Action::Update => counts.update += 1,
                Action::Recreate => counts.recreate += 1,
                Action::Prune => counts.prune += 1,
                Action::Unchanged => counts.unchanged += 1,
            }
        }
        counts
    }

    /// Anything out of sync (including changes a sync would hold back).
    pub fn has_differences(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged)
    }

    pub fn is_offline(&self) -> bool {
        matches!(self.cluster, ClusterView::Offline { .. })
    }
}

impl PlanCounts {
    /// `3 to create, 1 to update, 12 unchanged`, skipping zeros.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.create, "to create"),
            (self.update, "to update"),
            (self.recreate, "to recreate"),
            (self.prune, "to prune"),
            (self.unchanged, "unchanged"),
            (self.held, "held back"),
            (self.not_server_validated, "not server-validated"),
            (
                self.problems,
                if self.problems == 1 {
                    "problem"
                } else {
                    "problems"
                },
            ),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "nothing to sync".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The manifests a sync works on: git's, plus the application's namespace
/// when `createNamespace` is on and git does not declare it. That namespace
/// is never pruned by relbot (annotated `relbot.dev/prune: "false"`): it may
/// hold things relbot does not own.
pub fn with_created_namespace(app: &Application, manifests: Vec<Manifest>) -> Vec<Manifest> {
    let mut all = manifests;
    if let (true, Some(namespace)) = (app.sync.create_namespace, app.namespace.as_deref()) {
        let declared = all
            .iter()
            .any(|m| m.group().is_empty() && m.kind() == "Namespace" && m.name() == namespace);
        if !declared {
            all.push(Manifest {
                object: serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "annotations": { PRUNE_ANNOTATION: "false" },
                    },
                }),
                origin: Origin {
                    file: CREATE_NAMESPACE_ORIGIN.into(),
                    line: 0,
                },
            });
        }
    }
    crate::source::order::sort_manifests(&mut all);
    all
}

/// Shown as the origin of a namespace added by `createNamespace`.
pub const CREATE_NAMESPACE_ORIGIN: &str = "relbot.yaml (createNamespace)";

/// The plan when no cluster can be consulted: everything "would create",
/// in apply order, nothing validated by a server.
pub fn offline_plan(
    app: &Application,
    revision: Option<&str>,
    manifests: Vec<Manifest>,
    reason: &str,
) -> Plan {
    let (hooks, manifests, problems) = hooks::split(manifests);
    let changes = with_created_namespace(app, manifests)
        .iter()
        .map(|m| Change {
            key: m.key(),
            api_version: m.api_version().to_string(),
            origin: Some(m.origin.clone()),
            order: sync_order(m),
            action: Action::Create,
            reason: Reason::Missing,
            validation: Validation::Offline,
            diff: None,
            held: None,
            notes: Vec::new(),
        })
        .collect();
    Plan {
        application: app.name.clone(),
        revision: revision.map(str::to_string),
        cluster: ClusterView::Offline {
            reason: reason.to_string(),
        },
        changes,
        problems,
        notes: Vec::new(),
        hooks: hooks.iter().map(hooks::Hook::planned).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(yaml: &str) -> Application {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn m(api: &str, kind: &str, ns: Option<&str>, name: &str, line: usize) -> Manifest {
        let mut object = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            object["metadata"]["namespace"] = json!(ns);
        }
        Manifest {
            object,
            origin: Origin {
                file: "app/all.yaml".into(),
                line,
            },
        }
    }

    #[test]
    fn offline_plan_is_ordered_and_says_so() {
        let app = app("name: shop\npath: shop\nnamespace: shop\nsync: {createNamespace: true}\n");
        let manifests = vec![
            m("apps/v1", "Deployment", Some("shop"), "web", 10),
            m("v1", "Service", Some("shop"), "web", 1),
            m("v1", "ConfigMap", Some("shop"), "cfg", 20),
        ];
        let plan = offline_plan(&app, Some("abc123"), manifests, "no kubeconfig");
        let order: Vec<String> = plan.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(
            order,
            [
                "Namespace shop",
                "ConfigMap shop/cfg",
                "Service shop/web",
                "Deployment.apps shop/web"
            ]
        );
        assert!(
            plan.changes
                .iter()
                .all(|c| c.action == Action::Create && c.validation == Validation::Offline)
        );
        assert_eq!(plan.counts().summary(), "4 to create");
        assert!(plan.is_offline() && plan.has_differences());
    }

    #[test]
    fn declared_namespace_is_not_added_twice_and_empty_plan_is_clean() {
        let app = app("name: shop\npath: shop\nnamespace: shop\nsync: {createNamespace: true}\n");
        let plan = offline_plan(
            &app,
            None,
            vec![m("v1", "Namespace", None, "shop", 1)],
            "offline",
        );
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].origin.as_ref().unwrap().line, 1);

        let plain = self::app("name: empty\npath: empty\n");
        let plan = offline_plan(&plain, None, Vec::new(), "offline");
        assert!(!plan.has_differences());
        assert_eq!(plan.counts().summary(), "nothing to sync");
    }

    #[test]
    fn what_the_server_could_not_check_is_counted() {
        let app = app("name: shop\npath: shop\nnamespace: shop\n");
        let mut plan = offline_plan(
            &app,
            None,
            vec![
                m("v1", "ConfigMap", Some("shop"), "a", 1),
                m("v1", "ConfigMap", Some("shop"), "b", 5),
            ],
            "offline",
        );
        plan.changes[1].validation = Validation::NotServerValidated;
        assert_eq!(
            plan.counts().summary(),
            "2 to create, 1 not server-validated"
        );
    }
}
