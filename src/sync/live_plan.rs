//! The live plan: desired objects + what the cluster holds → a [`Plan`].
//!
//! Cost model (see DESIGN): one label-selected list per kind, from the API
//! server's watch cache, returns every object relbot owns for the
//! application; an object whose applied-hash matches and whose fields
//! relbot still owns is unchanged without another request. Desired objects
//! that the lists do not return are read by name, or with one list of their
//! namespace when there are many (to tell "create" from "adopt" or "owned by
//! another application"). Server-side dry-runs are sent only for
//! what is not unchanged, when the caller asks for validation: `relbot diff`,
//! `sync --dry-run`, and every sync, which validates the whole plan before its
//! first write. An object that exists is dry-run by the apply that will write
//! it; a new one, by a create where that is as strict (`new_object.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::{StreamExt, stream};
use serde_json::Value;

mod existing;
mod new_object;

use new_object::STAND_IN_NAMESPACE;

use super::crd_schema::{CrdSchemas, SchemaTally};
use super::diff::object_diff;
use super::hooks;
use super::inventory::{
    self, DesiredBody, Ownership, desired_body_of, is_unchanged, kind_id, ownership,
    prune_protection, recreate_allowed, resolve_kind_id,
};
use super::plan::{Action, Change, ClusterView, Plan, Reason, Validation, with_created_namespace};
use super::problem::PlanProblem;
use super::unvouched;
use crate::cluster::client::{ApiFailure, ListFrom, ReadOnlyCluster};
use crate::cluster::discovery::{KindIndex, ResolvedKind};
use crate::cluster::health::{self, Health, HealthRules};
use crate::config::Application;
use crate::manifest::{Manifest, ObjectKey, Origin, split_api_version};
use crate::source::order::{SyncOrder, sync_order};

/// Dry-runs in flight per apply in flight (`apply.concurrency`). A dry-run
/// stores nothing, so the server answers it without waiting on etcd, and
/// relbot's own work between answers (encoding a body, reading the answer)
/// would otherwise leave it idle.
const DRY_RUNS_PER_APPLY: usize = 2;

/// How thorough a plan is.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions<'a> {
    /// Dry-run every object that is not unchanged (diffs, strict validation,
    /// immutable-field detection) before anything is written.
    pub validate: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How an unchanged object's health is judged as it is listed.
    pub health_rules: &'a HealthRules,
    /// This relbot's status namespace, stamped on what it applies: what
    /// another relbot on the cluster applied is never taken or pruned.
    pub installation: &'a str,
}

/// What apply needs beyond the plan's public entries, index-aligned with
/// `plan.changes`.
#[derive(Debug, Clone)]
pub struct PlannedObject {
    pub kind: ResolvedKind,
    /// The body to apply: none for prunes, nor for unchanged objects (a
    /// no-op re-check of a large application then holds no desired bodies
    /// past the plan).
    pub desired: Option<DesiredBody>,
    /// The live object as listed: none when it does not exist, nor for an
    /// unchanged object, whose health is judged as it is listed instead.
    pub live: Option<Value>,
    /// An unchanged object's health when it was listed.
    pub health: Option<Health>,
}

impl PlannedObject {
    /// Whether the server checks part of it only when it is written, so
    /// that no dry-run vouches for it ([`unvouched`]).
    pub(crate) fn allocates_on_write(&self) -> bool {
        self.desired.as_ref().is_some_and(|desired| {
            unvouched::allocates_on_write(&self.kind.resource, &desired.body)
        })
    }
}

#[derive(Debug, Clone)]
pub struct LivePlan {
    pub plan: Plan,
    pub objects: Vec<PlannedObject>,
    /// Every kind relbot owns objects of for this application after the
    /// sync (the inventory kept with the status, for finding prunes).
    pub kinds: BTreeSet<String>,
    /// The application's hooks, for the sync to run.
    pub hooks: Vec<hooks::Hook>,
}

/// The identity of a live object (as listed).
pub fn live_key(object: &Value) -> ObjectKey {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    ObjectKey {
        group: split_api_version(api_version).0.to_string(),
        kind: object["kind"].as_str().unwrap_or("").to_string(),
        namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    }
}

fn uid(object: &Value) -> Option<&str> {
    object["metadata"]["uid"].as_str()
}

/// An object of the application as listed, judged on arrival against its
/// desired body. An unchanged object is kept as its health alone: nothing
/// else of it is read again (no diff, no write, no prune), and on a no-op
/// re-check of a large application the live objects would otherwise be most
/// of the run's memory. Any other object is kept without
/// `metadata.managedFields`: once relbot's own set has been compared nothing
/// later reads them (the diff takes relbot's set from the dry-run's answer,
/// health reads spec and status, prune and re-create read the uid and
/// annotations).
struct Listed {
    /// None for an unchanged object.
    object: Option<Value>,
    /// An unchanged object's health.
    health: Option<Health>,
}

impl Listed {
    fn judge(
        key: &ObjectKey,
        mut object: Value,
        wanted: &HashMap<&ObjectKey, &DesiredBody>,
        rules: &HealthRules,
    ) -> Self {
        let unchanged = wanted
            .get(key)
            .is_some_and(|desired| is_unchanged(&object, desired));
        if unchanged {
            return Listed {
                health: Some(health::assess_with(&object, rules)),
                object: None,
            };
        }
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        Listed {
            object: Some(object),
            health: None,
        }
    }
}

/// One kind's label-selected list: the application's objects of that kind.
type KindListed = Result<Vec<(ObjectKey, Listed)>, ApiFailure>;

/// A desired object once its kind is known: the rendered object itself has
/// become the body to apply (moved, not copied).
struct Resolved {
    key: ObjectKey,
    api_version: String,
    origin: Origin,
    order: SyncOrder,
    kind: ResolvedKind,
    desired: DesiredBody,
}

/// Plans one application against a live cluster. The manifests are taken
/// by value: each becomes its apply body in place.
pub async fn plan_application(
    cluster: &ReadOnlyCluster,
    discovered: &KindIndex,
    app: &Application,
    manifests: Vec<Manifest>,
    revision: Option<&str>,
    previous_kinds: &[String],
    options: PlanOptions<'_>,
) -> LivePlan {
    let concurrency = options.concurrency.max(1);
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let (hooks, manifests, hook_problems) = hooks::split(manifests);
    problems.extend(hook_problems);
    let manifests = with_created_namespace(app, manifests);

    // Kinds: the server's, plus those that CRDs in this plan will add.
    let mut index = discovered.clone();
    let schemas = CrdSchemas::from_manifests(&manifests);
    for m in manifests
        .iter()
        .filter(|m| m.group() == "apiextensions.k8s.io" && m.kind() == "CustomResourceDefinition")
    {
        index.add_pending_crd(&m.object);
    }
    for hook in &hooks {
        let m = &hook.manifest;
        if index.resolve(m.group(), m.version(), m.kind()).is_none() {
            problems.push(PlanProblem {
                key: Some(m.key()),
                origin: Some(m.origin.clone()),
                message: format!(
                    "hook of unknown kind {} {}: the cluster does not serve it and no CustomResourceDefinition in this application defines it",
                    m.api_version(),
                    m.kind()
                ),
            });
        }
    }

    let mut resolved = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        let Some(kind) = index
            .resolve(manifest.group(), manifest.version(), manifest.kind())
            .cloned()
        else {
            problems.push(PlanProblem {
                key: Some(manifest.key()),
                origin: Some(manifest.origin.clone()),
                message: format!(
                    "unknown kind {} {}: the cluster does not serve it and no CustomResourceDefinition in this application defines it",
                    manifest.api_version(),
                    manifest.kind()
                ),
            });
            continue;
        };
        let mut manifest = manifest;
        if !kind.namespaced && manifest.namespace().is_some() {
            // The API server ignores a namespace on a cluster-scoped object;
            // drop it so identities and tracking ids agree with the server's.
            if let Some(metadata) = manifest.object["metadata"].as_object_mut() {
                metadata.remove("namespace");
            }
        }
        if kind.namespaced
            && manifest.namespace().is_none()
            && let Some(namespace) = &app.namespace
            && let Some(metadata) = manifest.object["metadata"].as_object_mut()
        {
            // Only discovery could tell this kind is namespaced: default it now.
            metadata.insert("namespace".into(), namespace.clone().into());
        }
        if kind.namespaced && manifest.namespace().is_none() {
            problems.push(PlanProblem {
                key: Some(manifest.key()),
                origin: Some(manifest.origin.clone()),
                message: "namespaced object without a namespace: set metadata.namespace or the application's `namespace`"
                    .into(),
            });
            continue;
        }
        let key = manifest.key();
        let order = sync_order(&manifest);
        let api_version = manifest.api_version().to_string();
        let Manifest { object, origin } = manifest;
        let desired = desired_body_of(&key, object, app, options.installation);
        for pointer in &desired.ignored {
            notes.push(format!(
                "{key}: {pointer} left to its other owner (ignore rule)"
            ));
        }
        resolved.push(Resolved {
            key,
            api_version,
            origin,
            order,
            kind,
            desired,
        });
    }

    // One label-selected list per kind: every live object of the application.
    let mut list_kinds: BTreeMap<String, ResolvedKind> = BTreeMap::new();
    for r in resolved.iter().filter(|r| !r.kind.pending) {
        list_kinds.insert(kind_id(&r.kind), r.kind.clone());
    }
    for id in previous_kinds {
        if let Some(kind) = resolve_kind_id(&index, id).filter(|k| !k.pending) {
            list_kinds.entry(kind_id(&kind)).or_insert(kind);
        }
    }
    let selector = inventory::selector(&app.name);
    let wanted: HashMap<&ObjectKey, &DesiredBody> =
        resolved.iter().map(|r| (&r.key, &r.desired)).collect();
    let listed: Vec<(ResolvedKind, KindListed)> = stream::iter(list_kinds.values().cloned())
        .map(|kind| {
            let selector = selector.clone();
            let wanted = &wanted;
            async move {
                // Each item is judged and trimmed as its page arrives,
                // so the whole list is never held with managedFields.
                let items = cluster
                    .list_mapped(&kind, None, Some(&selector), ListFrom::WatchCache, |item| {
                        let key = live_key(&item);
                        (ownership(&app.name, options.installation, &key, &item) == Ownership::Ours)
                            .then(|| {
                                let listed =
                                    Listed::judge(&key, item, wanted, options.health_rules);
                                (key, listed)
                            })
                    })
                    .await;
                (kind, items)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // Each listed object names its kind by its place in `listed_kinds`: at
    // 5,000 objects a copy of the kind for each would be over a megabyte.
    let listed_count = listed
        .iter()
        .map(|(_, items)| items.as_ref().map_or(0, Vec::len))
        .sum();
    let mut owned: HashMap<ObjectKey, (usize, Listed)> = HashMap::with_capacity(listed_count);
    let mut listed_kinds = Vec::with_capacity(listed.len());
    let mut list_failed = false;
    for (kind, items) in listed {
        match items {
            Ok(items) => {
                owned.extend(
                    items
                        .into_iter()
                        .map(|(key, item)| (key, (listed_kinds.len(), item))),
                );
                listed_kinds.push(kind);
            }
            Err(failure) => {
                list_failed = true;
                problems.push(PlanProblem {
                    key: None,
                    origin: None,
                    message: format!("cannot list {} objects: {failure}", kind.resource.kind),
                });
            }
        }
    }

    // Desired objects the selected lists did not return: do they exist?
    let unlisted = resolved
        .iter()
        .filter(|r| !r.kind.pending && !owned.contains_key(&r.key))
        .map(|r| (&r.kind, &r.key));
    let mut existing = existing::find(cluster, unlisted, concurrency, &mut problems).await;
    tracing::debug!(
        application = %app.name,
        listed = owned.len(),
        found_by_name = existing.len(),
        "live objects read"
    );

    // Namespaces this plan creates: objects in them cannot be dry-run yet.
    let creating_namespaces: BTreeSet<String> = resolved
        .iter()
        .filter(|r| {
            r.key.group.is_empty()
                && r.key.kind == "Namespace"
                && !owned.contains_key(&r.key)
                && !existing.contains_key(&r.key)
        })
        .map(|r| r.key.name.clone())
        .collect();
    // Classify every desired object.
    let mut schema_checked = SchemaTally::default();
    // Sized once: at 5,000 objects a doubling vector would hold up to twice
    // the plan's entries, and both buffers while it grows.
    let mut changes = Vec::with_capacity(resolved.len());
    let mut objects = Vec::with_capacity(resolved.len());
    let mut kinds = BTreeSet::new();
    for r in resolved {
        kinds.insert(kind_id(&r.kind));
        let mut change = Change {
            key: r.key.clone(),
            api_version: r.api_version,
            origin: Some(r.origin.clone()),
            order: r.order,
            action: Action::Create,
            reason: Reason::Missing,
            validation: Validation::NotNeeded,
            diff: None,
            held: None,
            notes: Vec::new(),
        };
        let mut live = None;
        let mut listed_health = None;
        if let Some((_, listed)) = owned.remove(&r.key) {
            let Listed { object, health, .. } = listed;
            if let Some(health) = health {
                change.action = Action::Unchanged;
                change.reason = Reason::InSync;
                listed_health = Some(health);
            } else if let Some(object) = object {
                change.action = Action::Update;
                let same_hash = inventory::annotation(&object, inventory::HASH_ANNOTATION)
                    == Some(r.desired.hash.as_str());
                change.reason = if same_hash {
                    Reason::Drift
                } else {
                    Reason::ChangedInGit
                };
                if same_hash && !app.sync.self_heal {
                    change.held = Some("selfHeal is off: drift is reported, not reverted".into());
                }
                live = Some(object);
            }
        } else if let Some(object) = existing.remove(&r.key) {
            let someone_else = match ownership(&app.name, options.installation, &r.key, &object) {
                Ownership::OtherApplication(other) => Some(format!(
                    "already managed by application {other:?}; remove it from one of the two applications"
                )),
                Ownership::OtherInstallation(other) => Some(format!(
                    "already managed by another relbot (the one recording in namespace {other:?}); remove it from one of the two"
                )),
                Ownership::Ours | Ownership::Copy | Ownership::Unowned => None,
            };
            if let Some(message) = someone_else {
                problems.push(PlanProblem {
                    key: Some(r.key.clone()),
                    origin: Some(r.origin.clone()),
                    message,
                });
                continue;
            }
            change.action = Action::Update;
            change.reason = Reason::Adopt;
            change
                .notes
                .push("exists without relbot's tracking; relbot will adopt it".into());
            live = Some(object);
        } else if list_failed {
            change
                .notes
                .push("could not check whether it exists (a list failed)".into());
        }
        // Objects in a namespace this plan creates are validated in a
        // stand-in namespace (below); kinds a CRD of this plan brings are
        // checked here against that CRD's schema, since the server cannot
        // dry-run them before the CRD exists.
        if change.action != Action::Unchanged && r.kind.pending {
            change.validation = Validation::NotServerValidated;
            if let Some(check) = schemas.check(&r.desired.body) {
                change.validation = Validation::SchemaChecked;
                if !check.errors.is_empty() {
                    problems.push(PlanProblem {
                        key: Some(r.key.clone()),
                        origin: Some(r.origin.clone()),
                        message: format!(
                            "the schema of its CustomResourceDefinition (created by this plan, so checked here) refuses it: {}",
                            check.errors.join("; ")
                        ),
                    });
                }
                change.notes.push(format!(
                    "left to the server: {}",
                    check.unchecked.join("; ")
                ));
                schema_checked.record(&check);
            }
        }
        let desired = (change.action != Action::Unchanged).then_some(r.desired);
        changes.push(change);
        objects.push(PlannedObject {
            kind: r.kind,
            desired,
            live,
            health: listed_health,
        });
    }

    // Dry-runs: all differences when validating; held drift always (to show it).
    let to_check: Vec<usize> = (0..changes.len())
        .filter(|&i| {
            let c = &changes[i];
            c.action != Action::Unchanged
                && !matches!(
                    c.validation,
                    Validation::NotServerValidated | Validation::SchemaChecked
                )
                && (options.validate || c.held.is_some())
        })
        .collect();
    let results: Vec<(usize, Result<Value, ApiFailure>)> = stream::iter(to_check)
        .map(|i| {
            let object = &objects[i];
            let key = &changes[i].key;
            let body = &object
                .desired
                .as_ref()
                .expect("desired objects have a body")
                .body;
            let in_new_namespace = key
                .namespace
                .as_ref()
                .filter(|ns| creating_namespaces.contains(*ns));
            let creates = changes[i].action == Action::Create;
            async move {
                let (kind, namespace, name) = (&object.kind, key.namespace.as_deref(), &key.name);
                let result = match in_new_namespace {
                    Some(namespace) => {
                        new_object::dry_run_in_stand_in(cluster, kind, namespace, name, body).await
                    }
                    None if creates => {
                        new_object::dry_run(cluster, kind, namespace, name, body).await
                    }
                    None => cluster.dry_run_apply(kind, namespace, name, body).await,
                };
                (i, result)
            }
        })
        .buffer_unordered(concurrency * DRY_RUNS_PER_APPLY)
        .collect()
        .await;
    for (i, result) in results {
        let change = &mut changes[i];
        let object = &mut objects[i];
        match result {
            Ok(after) => {
                change.validation = Validation::ServerValidated;
                if object.allocates_on_write() {
                    change.notes.push(unvouched::NOTE.into());
                }
                // The full body of a new object is in git; a diff adds
                // nothing, so none is computed for it.
                if change.action != Action::Create {
                    change.diff = object_diff(&change.key, object.live.as_ref(), &after);
                }
                if change.action != Action::Create && change.diff.is_none() {
                    change
                        .notes
                        .push("values already equal; only relbot's ownership marks change".into());
                }
            }
            Err(failure) if failure.is_immutable() && object.live.is_some() => {
                change.action = Action::Recreate;
                let body = &object.desired.as_ref().expect("desired").body;
                if recreate_allowed(body) {
                    change.notes.push(failure.message.clone());
                } else {
                    // Without leave to re-create, git cannot be applied: a
                    // rejection like any other, so nothing of the stage is
                    // written (as Argo CD's dry-run stops a sync).
                    problems.push(PlanProblem {
                        key: Some(change.key.clone()),
                        origin: change.origin.clone(),
                        message: format!(
                            "the server cannot change it in place ({}); annotate it {}: Replace=true to let relbot delete and re-create it",
                            failure.message,
                            inventory::SYNC_OPTIONS_ANNOTATION
                        ),
                    });
                }
            }
            Err(failure)
                if failure.code == 403
                    && change
                        .key
                        .namespace
                        .as_ref()
                        .is_some_and(|ns| creating_namespaces.contains(ns)) =>
            {
                // The stand-in namespace's own rules (relbot may not write
                // there, a quota of its own) refused it: say the object is
                // unchecked rather than fail a sync it may pass.
                change.validation = Validation::NotServerValidated;
                change.notes.push(format!(
                    "not server-validated: its namespace is created by this plan, and the dry-run in {STAND_IN_NAMESPACE:?} instead was refused for that namespace ({})",
                    failure.message
                ));
            }
            Err(failure) => problems.push(PlanProblem {
                key: Some(change.key.clone()),
                origin: change.origin.clone(),
                message: format!("the server rejected it: {failure}"),
            }),
        }
    }

    if options.validate {
        problems.extend(
            super::hook_run::dry_run_hooks(
                cluster,
                &index,
                app,
                &hooks,
                &creating_namespaces,
                STAND_IN_NAMESPACE,
            )
            .await,
        );
    }
    if let Some(note) = schema_checked.note() {
        notes.push(note);
    }

    // Prune: what relbot owns for this application and git no longer has.
    let total_owned = owned.len() + changes.iter().filter(|c| objects_live(c)).count();
    // Every object left is live (only desired objects are judged unchanged).
    let mut prunes: Vec<(SyncOrder, Change, PlannedObject)> = owned
        .into_iter()
        .filter_map(|(key, (slot, listed))| {
            listed
                .object
                .map(|live| (listed_kinds[slot].clone(), key, live))
        })
        .map(|(kind, key, live)| {
            let as_manifest = Manifest {
                object: live.clone(),
                origin: Origin {
                    file: "".into(),
                    line: 0,
                },
            };
            let held = if !app.sync.prune {
                Some("prune is off for this application".to_string())
            } else {
                prune_protection(&live, &key, app)
            };
            let order = sync_order(&as_manifest);
            let change = Change {
                key,
                api_version: live["apiVersion"].as_str().unwrap_or("").to_string(),
                origin: None,
                order,
                action: Action::Prune,
                reason: Reason::NoLongerInGit,
                validation: Validation::NotNeeded,
                diff: None,
                held,
                notes: uid(&live)
                    .map(|u| vec![format!("uid {u}")])
                    .unwrap_or_default(),
            };
            (
                order,
                change,
                PlannedObject {
                    kind,
                    desired: None,
                    live: Some(live),
                    health: None,
                },
            )
        })
        .collect();
    prunes.sort_by(|a, b| (b.0, &b.1.key).cmp(&(a.0, &a.1.key)));
    let prunable = prunes.iter().filter(|p| p.1.held.is_none()).count();
    if prunable > 0 && total_owned > 0 {
        let share = prunable * 100 / total_owned;
        if share > app.sync.max_prune_percent as usize {
            let message = format!(
                "prune refused: it would delete {prunable} of the application's {total_owned} live objects ({share}%), more than sync.maxPrunePercent ({}%). If git is right, raise maxPrunePercent for one run or delete them by hand",
                app.sync.max_prune_percent
            );
            for (_, change, _) in prunes.iter_mut().filter(|p| p.1.held.is_none()) {
                change.held = Some("prune refused: too large a share of the application".into());
            }
            notes.push(message);
        }
    }
    changes.reserve_exact(prunes.len());
    objects.reserve_exact(prunes.len());
    for (_, change, object) in prunes {
        changes.push(change);
        objects.push(object);
    }

    LivePlan {
        plan: Plan {
            application: app.name.clone(),
            revision: revision.map(str::to_string),
            cluster: ClusterView::Live {
                server: cluster.server().to_string(),
            },
            changes,
            problems,
            notes,
            hooks: hooks.iter().map(hooks::Hook::planned).collect(),
        },
        objects,
        kinds,
        hooks,
    }
}

fn objects_live(change: &Change) -> bool {
    matches!(
        change.reason,
        Reason::InSync | Reason::ChangedInGit | Reason::Drift
    )
}
