//! Where results are kept: one ConfigMap per application,
//! `relbot-status-<app>` in relbot's namespace (`status.namespace`, default
//! `relbot`), with
//! - `result.json`: the last [`SyncResult`] (unchanged objects left out, and
//!   for a very large change the simply-applied ones too, so it stays below
//!   the API server's 1 MiB ConfigMap limit);
//! - `kinds.json`: the inventory — every `group/version/kind` relbot owns
//!   objects of for the application, so a kind that left git entirely is
//!   still listed and its objects pruned;
//! - `runs.json`: the last [`RUNS_KEPT`] runs that changed what the record
//!   says (trigger, revision, duration, outcome, error), newest first, each
//!   a few hundred bytes at most.
//!
//! A ConfigMap rather than a CRD: it needs no cluster-wide install step and
//! no extra RBAC beyond the namespace, and `kubectl get cm -n relbot -o yaml`
//! shows it. The write is skipped when nothing but timings changed, so a
//! no-op sync writes nothing at all.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::inventory::{self, content_hash};
use super::result::{Effect, RunPhase, SyncResult};
use crate::cluster::client::{ApiFailure, Cluster, ListFrom, ReadOnlyCluster};
use crate::cluster::discovery::ResolvedKind;
use crate::cluster::health::HealthStatus;

const RESULT_KEY: &str = "result.json";
const KINDS_KEY: &str = "kinds.json";
const RUNS_KEY: &str = "runs.json";
/// Runs kept in the record (and on the status page).
pub const RUNS_KEPT: usize = 20;
/// Longest error text kept per run: the full text is in the result.
const RUN_ERROR_CHARS: usize = 300;
/// Longest trigger text kept per run.
const RUN_TRIGGER_CHARS: usize = 120;
const FINGERPRINT_ANNOTATION: &str = "relbot.dev/status-fingerprint";
/// Names the application a status record belongs to.
const STATUS_OF_LABEL: &str = "relbot.dev/status-of";

pub fn config_map_name(application: &str) -> String {
    format!("relbot-status-{application}")
}

fn core_kind(kind: &str, plural: &str, namespaced: bool) -> ResolvedKind {
    ResolvedKind {
        resource: ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced,
        pending: false,
    }
}

/// What the last run left behind.
#[derive(Debug, Clone, Default)]
pub struct StoredStatus {
    pub result: Option<SyncResult>,
    pub kinds: Vec<String>,
    /// Newest first.
    pub runs: Vec<RunRecord>,
    fingerprint: Option<String>,
}

/// One run in the history: small on purpose (20 of them share the
/// ConfigMap with the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub started_at: DateTime<Utc>,
    /// What asked for the run (`push abc123`, `poll`, `startup`…).
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub duration_ms: u64,
    /// `Synced`, `OutOfSync` or `Failed`.
    pub outcome: String,
    pub health: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl RunRecord {
    /// The history line of `result`, asked for by `trigger`.
    pub fn of(result: &SyncResult, trigger: &str) -> RunRecord {
        RunRecord {
            started_at: result.started_at,
            trigger: cut(trigger, RUN_TRIGGER_CHARS),
            revision: result.revision.clone(),
            duration_ms: result.timings.total_ms,
            outcome: match result.phase {
                RunPhase::Synced => "Synced",
                RunPhase::OutOfSync => "OutOfSync",
                RunPhase::Failed => "Failed",
            }
            .into(),
            health: result.health.as_str().into(),
            error: (!result.errors.is_empty())
                .then(|| cut(&result.errors.join("; "), RUN_ERROR_CHARS)),
        }
    }
}

/// `runs` with `newest` in front, at most [`RUNS_KEPT`] long.
pub fn push_run(runs: &[RunRecord], newest: RunRecord) -> Vec<RunRecord> {
    std::iter::once(newest)
        .chain(runs.iter().cloned())
        .take(RUNS_KEPT)
        .collect()
}

/// Reads an application's stored status; `None` when there is none yet or it
/// cannot be read (the plan then only lists the kinds git names).
pub async fn read(
    cluster: &ReadOnlyCluster,
    namespace: &str,
    application: &str,
) -> Option<StoredStatus> {
    read_record(cluster, namespace, application)
        .await
        .ok()
        .flatten()
}

/// [`read`], telling "no record" (`Ok(None)`) from a record that could not
/// be read.
pub async fn read_record(
    cluster: &ReadOnlyCluster,
    namespace: &str,
    application: &str,
) -> Result<Option<StoredStatus>, ApiFailure> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let Some(object) = cluster
        .get(&kind, Some(namespace), &config_map_name(application))
        .await?
    else {
        return Ok(None);
    };
    let data = &object["data"];
    Ok(Some(StoredStatus {
        result: data[RESULT_KEY]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok()),
        kinds: data[KINDS_KEY]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        runs: data[RUNS_KEY]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        fingerprint: inventory::annotation(&object, FINGERPRINT_ANNOTATION).map(str::to_string),
    }))
}

/// One of relbot's own notes on an application's record (e.g. the standing
/// it last notified people of); `None` when there is no record or note.
pub async fn read_annotation(
    cluster: &ReadOnlyCluster,
    namespace: &str,
    application: &str,
    key: &str,
) -> Option<String> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let object = cluster
        .get(&kind, Some(namespace), &config_map_name(application))
        .await
        .ok()??;
    inventory::annotation(&object, key).map(str::to_string)
}

/// Sets a note on the record (a merge patch: the record's content and the
/// apply that writes it are left alone). Fails with 404 before the first
/// record is written.
pub async fn annotate(
    cluster: &Cluster,
    namespace: &str,
    application: &str,
    key: &str,
    value: &str,
) -> Result<(), ApiFailure> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let patch = json!({"metadata": {"annotations": {key: value}}});
    cluster
        .merge_patch(
            &kind,
            Some(namespace),
            &config_map_name(application),
            &patch,
        )
        .await
        .map(|_| ())
}

/// When the application's current health began: the stored result's moment
/// while the health is unchanged, else `now` (a result stored before this
/// was recorded starts the count now).
pub fn health_since(
    previous: Option<&SyncResult>,
    health: HealthStatus,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    previous
        .filter(|p| p.health == health)
        .and_then(|p| p.health_since)
        .unwrap_or(now)
}

/// Room for `result.json`. The API server refuses a ConfigMap whose data
/// passes 1 MiB; the rest is left for `kinds.json`, which must always fit.
const RESULT_BUDGET: usize = 768 * 1024;

/// The stored form of a result: unchanged healthy objects dropped (an
/// unchanged object that is not healthy is what the status is about: the
/// rollback names it); and when that is
/// still too big (the first sync of thousands of objects), the objects that
/// were simply applied, then as many of the rest as it takes, each cut said
/// in a note. What failed or is held back is kept longest.
fn stored_result(result: &SyncResult) -> String {
    let to_json = |r: &SyncResult| serde_json::to_string(r).unwrap_or_default();
    let mut kept = result.clone();
    kept.objects.retain(|o| {
        !matches!(o.outcome, Effect::Unchanged)
            || o.health.as_ref().is_some_and(|h| !h.status.passes_gate())
    });
    let text = to_json(&kept);
    if text.len() <= RESULT_BUDGET {
        return text;
    }
    let total = kept.objects.len();
    kept.objects.retain(|o| {
        !matches!(o.outcome, Effect::Applied)
            || o.health.as_ref().is_some_and(|h| !h.status.passes_gate())
    });
    let mut keep = kept.objects.len();
    loop {
        let mut trial = kept.clone();
        trial.objects.truncate(keep);
        trial.notes.push(format!(
            "{} of {total} changed objects are left out of this stored result to stay under the ConfigMap size limit; the run's own output lists them all",
            total - keep
        ));
        let text = to_json(&trial);
        if text.len() <= RESULT_BUDGET || keep == 0 {
            return text;
        }
        keep /= 2;
    }
}

/// What must differ for a new write: the state the result describes
/// (revision, phase, health, what is held back or failing, the inventory),
/// not what this particular run did — so a no-op after a sync that created
/// everything writes nothing.
fn fingerprint(result: &SyncResult, kinds: &[String]) -> String {
    let unsettled: Vec<Value> = result
        .objects
        .iter()
        .filter(|o| {
            !matches!(o.outcome, Effect::Applied | Effect::Unchanged)
                || o.health.as_ref().is_some_and(|h| !h.status.passes_gate())
        })
        .map(|o| {
            // In place, written now or before, is one state: a look again
            // at a rollout still in progress writes nothing.
            let effect = match &o.outcome {
                Effect::Applied | Effect::Unchanged => None,
                other => Some(other),
            };
            json!([o.key, effect, o.health])
        })
        .collect();
    content_hash(&json!({
        "revision": result.revision,
        "phase": result.phase,
        "health": result.health,
        "healthSince": result.health_since,
        "errors": result.errors,
        "unsettled": unsettled,
        "kinds": kinds,
    }))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot store the sync result in ConfigMap {namespace}/{name}: {failure}")]
pub struct StatusError {
    pub namespace: String,
    pub name: String,
    pub failure: ApiFailure,
}

/// Stores a result (creating relbot's namespace when needed), with this
/// run in front of the stored history. Returns whether anything was written:
/// a run that changed nothing the record says is not added to the history
/// either, so a no-op sync still writes nothing.
pub async fn write(
    cluster: &Cluster,
    namespace: &str,
    result: &SyncResult,
    kinds: &[String],
    previous: Option<&StoredStatus>,
    trigger: &str,
) -> Result<bool, StatusError> {
    let name = config_map_name(&result.application);
    let print = fingerprint(result, kinds);
    if previous.and_then(|p| p.fingerprint.as_deref()) == Some(print.as_str()) {
        return Ok(false);
    }
    let runs = push_run(
        previous.map(|p| p.runs.as_slice()).unwrap_or_default(),
        RunRecord::of(result, trigger),
    );
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                inventory::MANAGED_BY_LABEL: inventory::MANAGED_BY_VALUE,
                "app.kubernetes.io/component": "sync-status",
                STATUS_OF_LABEL: result.application,
            },
            "annotations": { FINGERPRINT_ANNOTATION: print },
        },
        "data": {
            RESULT_KEY: stored_result(result),
            KINDS_KEY: serde_json::to_string(kinds).unwrap_or_default(),
            RUNS_KEY: serde_json::to_string(&runs).unwrap_or_default(),
        },
    });
    let config_maps = core_kind("ConfigMap", "configmaps", true);
    let error = |failure| StatusError {
        namespace: namespace.into(),
        name: name.clone(),
        failure,
    };
    match cluster
        .apply(&config_maps, Some(namespace), &name, &body)
        .await
    {
        Ok(_) => Ok(true),
        Err(failure) if failure.is_not_found() => {
            let namespaces = core_kind("Namespace", "namespaces", false);
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace,
                "labels": {inventory::MANAGED_BY_LABEL: inventory::MANAGED_BY_VALUE}}});
            cluster
                .apply(&namespaces, None, namespace, &ns)
                .await
                .map_err(error)?;
            cluster
                .apply(&config_maps, Some(namespace), &name, &body)
                .await
                .map_err(error)?;
            Ok(true)
        }
        Err(failure) => Err(error(failure)),
    }
}

/// The applications with a stored result in the namespace, read from each
/// record's label: the results themselves (a large application's is a
/// sizeable JSON text) are neither kept nor parsed.
pub async fn recorded_applications(
    cluster: &ReadOnlyCluster,
    namespace: &str,
) -> Result<BTreeSet<String>, ApiFailure> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let names = cluster
        .list_mapped(
            &kind,
            Some(namespace),
            Some(&status_selector()),
            ListFrom::Storage,
            |cm| {
                cm["metadata"]["labels"][STATUS_OF_LABEL]
                    .as_str()
                    .map(str::to_string)
            },
        )
        .await;
    match names {
        Ok(names) => Ok(names.into_iter().collect()),
        Err(failure) if failure.is_not_found() => Ok(BTreeSet::new()),
        Err(failure) => Err(failure),
    }
}

fn status_selector() -> String {
    format!(
        "{}={},app.kubernetes.io/component=sync-status",
        inventory::MANAGED_BY_LABEL,
        inventory::MANAGED_BY_VALUE
    )
}

/// Every application's stored result in the namespace (for `relbot status`).
pub async fn read_all(
    cluster: &ReadOnlyCluster,
    namespace: &str,
) -> Result<Vec<SyncResult>, ApiFailure> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let items = match cluster
        .list(&kind, Some(namespace), Some(&status_selector()))
        .await
    {
        Ok(items) => items,
        Err(failure) if failure.is_not_found() => Vec::new(),
        Err(failure) => return Err(failure),
    };
    let mut results: Vec<SyncResult> = items
        .iter()
        .filter_map(|cm| {
            cm["data"][RESULT_KEY]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
        })
        .collect();
    results.sort_by(|a, b| a.application.cmp(&b.application));
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::client::RequestCounts;
    use crate::cluster::health::Health;
    use crate::manifest::ObjectKey;
    use crate::sync::plan::{Action, Reason};
    use crate::sync::result::{ObjectOutcome, RunPhase, Timings};

    fn result_with(applied: usize, failed: usize) -> SyncResult {
        let object = |i: usize, outcome: Effect| ObjectOutcome {
            key: ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("shop".into()),
                name: format!("config-map-with-a-long-name-{i:06}"),
            },
            api_version: "v1".into(),
            origin: None,
            action: Action::Create,
            reason: Reason::Missing,
            outcome,
            diff: None,
            health: None,
        };
        let mut objects: Vec<ObjectOutcome> =
            (0..applied).map(|i| object(i, Effect::Applied)).collect();
        objects.extend((0..failed).map(|i| object(i, Effect::Failed("forbidden".into()))));
        SyncResult {
            application: "shop".into(),
            revision: Some("abc".into()),
            server: "https://cluster".into(),
            started_at: chrono::Utc::now(),
            phase: RunPhase::Failed,
            health: HealthStatus::Healthy,
            objects,
            hooks: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            requests: RequestCounts::default(),
            status_recorded: false,
            health_since: None,
            timings: Timings::default(),
        }
    }

    #[test]
    fn health_since_carries_over_while_the_health_stays() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (then, now) = (t("2026-01-01T12:00:00Z"), t("2026-01-01T12:30:00Z"));
        let mut previous = result_with(0, 0);
        previous.health = HealthStatus::Degraded;
        previous.health_since = Some(then);
        assert_eq!(
            health_since(Some(&previous), HealthStatus::Degraded, now),
            then
        );
        assert_eq!(
            health_since(Some(&previous), HealthStatus::Healthy, now),
            now
        );
        previous.health_since = None;
        assert_eq!(
            health_since(Some(&previous), HealthStatus::Degraded, now),
            now
        );
        assert_eq!(health_since(None, HealthStatus::Degraded, now), now);
    }

    #[test]
    fn looking_again_at_a_rollout_in_progress_changes_no_fingerprint() {
        let rolling = |outcome: Effect, status: HealthStatus| {
            let mut result = result_with(1, 0);
            result.health = HealthStatus::Progressing;
            result.objects[0].outcome = outcome;
            result.objects[0].health = Some(Health {
                status,
                message: "0 of 1 replicas available".into(),
            });
            fingerprint(&result, &[])
        };
        let created = rolling(Effect::Applied, HealthStatus::Progressing);
        assert_eq!(
            created,
            rolling(Effect::Unchanged, HealthStatus::Progressing)
        );
        assert_ne!(created, rolling(Effect::Unchanged, HealthStatus::Degraded));
        assert_ne!(
            created,
            rolling(
                Effect::Failed("forbidden".into()),
                HealthStatus::Progressing
            )
        );
    }

    #[test]
    fn an_unchanged_object_that_is_not_healthy_is_stored() {
        let mut result = result_with(0, 0);
        let mut object = result_with(1, 0).objects.remove(0);
        object.outcome = Effect::Unchanged;
        object.health = Some(Health {
            status: HealthStatus::Degraded,
            message: "ProgressDeadlineExceeded".into(),
        });
        let mut healthy = object.clone();
        healthy.health = Some(Health {
            status: HealthStatus::Healthy,
            message: String::new(),
        });
        result.objects = vec![object, healthy];
        let stored: SyncResult = serde_json::from_str(&stored_result(&result)).unwrap();
        assert_eq!(stored.objects.len(), 1);
        assert_eq!(
            stored.objects[0].health.as_ref().unwrap().status,
            HealthStatus::Degraded
        );
    }

    #[test]
    fn the_run_history_keeps_twenty_small_runs_newest_first() {
        let mut result = result_with(1, 1);
        result.errors = vec!["x".repeat(5000)];
        let mut runs = Vec::new();
        for i in 0..25 {
            runs = push_run(&runs, RunRecord::of(&result, &format!("push {i}")));
        }
        assert_eq!(runs.len(), RUNS_KEPT);
        assert_eq!(runs[0].trigger, "push 24");
        assert_eq!(runs[0].outcome, "Failed");
        let error = runs[0].error.as_deref().unwrap();
        assert_eq!(error.chars().count(), RUN_ERROR_CHARS);
        assert!(error.ends_with('…'));
        let stored = serde_json::to_string(&runs).unwrap();
        assert!(stored.len() < 10 * 1024, "{} bytes", stored.len());
    }

    #[test]
    fn a_small_result_is_stored_whole() {
        let result = result_with(10, 1);
        let stored: SyncResult = serde_json::from_str(&stored_result(&result)).unwrap();
        assert_eq!(stored.objects.len(), 11);
        assert!(stored.notes.is_empty());
    }

    /// The first sync of 20,000 objects would store ~4 MB; the API server
    /// takes at most 1 MiB. What failed survives; the cut is said.
    #[test]
    fn a_huge_result_fits_the_configmap_and_keeps_the_failures() {
        let result = result_with(20_000, 3);
        let text = stored_result(&result);
        assert!(text.len() <= RESULT_BUDGET, "{} bytes", text.len());
        let stored: SyncResult = serde_json::from_str(&text).unwrap();
        assert_eq!(stored.objects.len(), 3);
        assert!(
            stored
                .objects
                .iter()
                .all(|o| matches!(o.outcome, Effect::Failed(_)))
        );
        assert!(
            stored.notes[0].starts_with("20000 of 20003 changed objects are left out"),
            "{:?}",
            stored.notes
        );
    }

    #[test]
    fn too_many_failures_are_cut_too() {
        let text = stored_result(&result_with(0, 20_000));
        assert!(text.len() <= RESULT_BUDGET, "{} bytes", text.len());
        let stored: SyncResult = serde_json::from_str(&text).unwrap();
        assert!(!stored.objects.is_empty() && stored.objects.len() < 20_000);
    }
}
