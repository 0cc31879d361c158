//! Writing one planned object: server-side apply, one quick retry of a
//! transient failure, and delete-and-create when an immutable field changed
//! and the object allows it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::inventory::{self, recreate_allowed};
use super::live_plan::PlannedObject;
use super::plan::{Action, Change};
use crate::cluster::client::{Cluster, Dependents};

/// One write, with one quick retry of a transient failure, and a
/// delete-and-create when an immutable field changed and the object allows it.
pub(super) async fn write_entry(
    cluster: &Cluster,
    change: &Change,
    object: &PlannedObject,
) -> Result<Value, String> {
    let key = &change.key;
    let Some(desired) = &object.desired else {
        return Err("nothing to apply".into());
    };
    if object.kind.pending {
        return Err(format!(
            "its kind {} is still not served after its CustomResourceDefinition was applied",
            object.kind.resource.kind
        ));
    }
    let namespace = key.namespace.as_deref();
    let apply = || cluster.apply(&object.kind, namespace, &key.name, &desired.body);
    let mut result = apply().await;
    if let Err(failure) = &result
        && failure.is_transient()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = apply().await;
    }
    match result {
        Ok(after) => Ok(after),
        Err(failure) if failure.is_immutable() || change.action == Action::Recreate => {
            if !recreate_allowed(&desired.body) {
                return Err(format!(
                    "an immutable field changed ({}); annotate it {}: Replace=true to let relbot delete and re-create it",
                    failure.message,
                    inventory::SYNC_OPTIONS_ANNOTATION
                ));
            }
            let uid = object
                .live
                .as_ref()
                .and_then(|l| l["metadata"]["uid"].as_str());
            cluster
                .delete(
                    &object.kind,
                    namespace,
                    &key.name,
                    uid,
                    dependents_on_recreate(object),
                )
                .await
                .map_err(|f| format!("delete for re-create: {f}"))?;
            // Wait for the old object to be gone (finalizers) before creating.
            let deadline = Instant::now() + Duration::from_secs(60);
            while cluster
                .get(&object.kind, namespace, &key.name)
                .await
                .map_err(|f| f.to_string())?
                .is_some()
            {
                if Instant::now() > deadline {
                    return Err("re-create: the old object was still there after 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            apply()
                .await
                .map_err(|f| format!("create after delete: {f}"))
        }
        Err(failure) => Err(failure.to_string()),
    }
}

/// A StatefulSet whose selector stays is deleted without its Pods: the new
/// one adopts them, so a change to its claim templates (the usual reason)
/// does not stop the database it runs, as `kubectl delete --cascade=orphan`
/// does by hand. Anything else takes its dependents with it: a Deployment
/// re-created for a new selector would never adopt its old ReplicaSets.
fn dependents_on_recreate(object: &PlannedObject) -> Dependents {
    let selector = |body: &Value| body["spec"]["selector"].clone();
    let keeps_selector = match (&object.live, &object.desired) {
        (Some(live), Some(desired)) => selector(live) == selector(&desired.body),
        _ => false,
    };
    let kind = &object.kind.resource;
    if kind.group == "apps" && kind.kind == "StatefulSet" && keeps_selector {
        Dependents::Keep
    } else {
        Dependents::Delete
    }
}
