//! Where results are kept: one ConfigMap per application,
//! `relbot-status-<app>` in relbot's namespace (`status.namespace`, default
//! `relbot`), with
//! - `result.json`: the last [`SyncResult`] (unchanged objects left out, to
//!   stay far below the 1 MiB object limit even for thousands of objects);
//! - `kinds.json`: the inventory — every `group/version/kind` relbot owns
//!   objects of for the application, so a kind that left git entirely is
//!   still listed and its objects pruned.
//!
//! A ConfigMap rather than a CRD: it needs no cluster-wide install step and
//! no extra RBAC beyond the namespace, and `kubectl get cm -n relbot -o yaml`
//! shows it. The write is skipped when nothing but timings changed, so a
//! no-op sync writes nothing at all.

use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::inventory::{self, content_hash};
use super::result::{Outcome, SyncResult};
use crate::cluster::client::{ApiFailure, Cluster, ReadOnlyCluster};
use crate::cluster::discovery::ResolvedKind;

const RESULT_KEY: &str = "result.json";
const KINDS_KEY: &str = "kinds.json";
const FINGERPRINT_ANNOTATION: &str = "relbot.dev/status-fingerprint";

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
    fingerprint: Option<String>,
}

/// Reads an application's stored status; `None` when there is none yet or it
/// cannot be read (the plan then only lists the kinds git names).
pub async fn read(
    cluster: &ReadOnlyCluster,
    namespace: &str,
    application: &str,
) -> Option<StoredStatus> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let object = cluster
        .get(&kind, Some(namespace), &config_map_name(application))
        .await
        .ok()??;
    let data = &object["data"];
    Some(StoredStatus {
        result: data[RESULT_KEY]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok()),
        kinds: data[KINDS_KEY]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        fingerprint: inventory::annotation(&object, FINGERPRINT_ANNOTATION).map(str::to_string),
    })
}

/// The stored form of a result: unchanged objects dropped.
fn compact(result: &SyncResult) -> SyncResult {
    let mut kept = result.clone();
    kept.objects
        .retain(|o| !matches!(o.outcome, Outcome::Unchanged));
    kept
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
            !matches!(o.outcome, Outcome::Applied | Outcome::Unchanged)
                || o.health.as_ref().is_some_and(|h| !h.status.passes_gate())
        })
        .map(|o| json!([o.key, o.outcome, o.health]))
        .collect();
    content_hash(&json!({
        "revision": result.revision,
        "phase": result.phase,
        "health": result.health,
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

/// Stores a result (creating relbot's namespace when needed). Returns
/// whether anything was written.
pub async fn write(
    cluster: &Cluster,
    namespace: &str,
    result: &SyncResult,
    kinds: &[String],
    previous: Option<&StoredStatus>,
) -> Result<bool, StatusError> {
    let name = config_map_name(&result.application);
    let print = fingerprint(result, kinds);
    if previous.and_then(|p| p.fingerprint.as_deref()) == Some(print.as_str()) {
        return Ok(false);
    }
    let stored = compact(result);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                inventory::MANAGED_BY_LABEL: inventory::MANAGED_BY_VALUE,
                "app.kubernetes.io/component": "sync-status",
                "relbot.dev/status-of": result.application,
            },
            "annotations": { FINGERPRINT_ANNOTATION: print },
        },
        "data": {
            RESULT_KEY: serde_json::to_string(&stored).unwrap_or_default(),
            KINDS_KEY: serde_json::to_string(kinds).unwrap_or_default(),
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

/// Every application's stored result in the namespace (for `relbot status`).
pub async fn read_all(
    cluster: &ReadOnlyCluster,
    namespace: &str,
) -> Result<Vec<SyncResult>, ApiFailure> {
    let kind = core_kind("ConfigMap", "configmaps", true);
    let selector = format!(
        "{}={},app.kubernetes.io/component=sync-status",
        inventory::MANAGED_BY_LABEL,
        inventory::MANAGED_BY_VALUE
    );
    let items = match cluster.list(&kind, Some(namespace), Some(&selector)).await {
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
