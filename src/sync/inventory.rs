//! What relbot owns in a cluster and how it marks it.
//!
//! Every object relbot applies carries:
//! - labels `app.kubernetes.io/managed-by: relbot` and
//!   `relbot.dev/application: <app>`, so one label-selected list per kind
//!   returns every live object of an application;
//! - annotation `relbot.dev/tracking-id: <app>:<group>/<kind>:<ns>/<name>`,
//!   so an object whose labels were copied (a `kubectl get -o yaml | apply`
//!   into another namespace) is not mistaken for ours — labels alone are
//!   never enough to prune;
//! - annotation `relbot.dev/installation: <status namespace>`: which relbot
//!   applied it. Two relbots on one cluster (two teams, two configs) may
//!   both have an application called `web`; their lists return each other's
//!   objects, and without this each would prune the other's. An object
//!   without it was applied before relbot wrote it and counts as ours
//!   (the next apply adds it, since it is part of the hash);
//! - annotation `relbot.dev/applied-hash`: a hash of the body relbot last
//!   applied. With relbot's `managedFields` entry this decides "unchanged"
//!   without a request per object (see [`is_unchanged`]).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cluster::discovery::{KindIndex, ResolvedKind};
use crate::cluster::fields;
use crate::config::{Application, IgnoreRule};
use crate::manifest::{Manifest, ObjectKey};

pub use crate::cluster::fields::FIELD_MANAGER;
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "relbot";
pub const APPLICATION_LABEL: &str = "relbot.dev/application";
pub const TRACKING_ANNOTATION: &str = "relbot.dev/tracking-id";
pub const INSTALLATION_ANNOTATION: &str = "relbot.dev/installation";
pub const HASH_ANNOTATION: &str = "relbot.dev/applied-hash";
pub const PRUNE_ANNOTATION: &str = "relbot.dev/prune";
pub const SYNC_OPTIONS_ANNOTATION: &str = "relbot.dev/sync-options";

/// `group/version/kind` as kept in the inventory.
pub fn kind_id(kind: &ResolvedKind) -> String {
    format!(
        "{}/{}/{}",
        kind.resource.group, kind.resource.version, kind.resource.kind
    )
}

/// The kind a stored `group/version/kind` names, if the server still serves it
/// (at that version, else at any version of the group and kind).
pub fn resolve_kind_id(index: &KindIndex, id: &str) -> Option<ResolvedKind> {
    let mut parts = id.splitn(3, '/');
    let (group, version, kind) = (parts.next()?, parts.next()?, parts.next()?);
    index
        .resolve(group, version, kind)
        .or_else(|| index.resolve_group_kind(group, kind))
        .cloned()
}

/// The label selector that lists an application's live objects.
pub fn selector(application: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{APPLICATION_LABEL}={application}")
}

/// `<app>:<group>/<kind>:<namespace>/<name>` (namespace empty when cluster-scoped).
pub fn tracking_id(application: &str, key: &ObjectKey) -> String {
    format!(
        "{application}:{}/{}:{}/{}",
        key.group,
        key.kind,
        key.namespace.as_deref().unwrap_or(""),
        key.name
    )
}

/// Who a live object belongs to, judged by its tracking annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Carries this application's tracking id for exactly this object.
    Ours,
    /// Tracked by another application.
    OtherApplication(String),
    /// Applied by another relbot: the status namespace it records in.
    OtherInstallation(String),
    /// Carries this application's tracking id for a different object: a copy.
    Copy,
    /// No tracking id: created by someone else (kubectl, a Helm chart…).
    Unowned,
}

/// `installation` is this relbot's status namespace (see the module notes).
pub fn ownership(
    application: &str,
    installation: &str,
    key: &ObjectKey,
    live: &Value,
) -> Ownership {
    let Some(id) = annotation(live, TRACKING_ANNOTATION) else {
        return Ownership::Unowned;
    };
    if let Some(other) = annotation(live, INSTALLATION_ANNOTATION).filter(|i| *i != installation) {
        return Ownership::OtherInstallation(other.to_string());
    }
    if id == tracking_id(application, key) {
        return Ownership::Ours;
    }
    match id.split_once(':') {
        Some((app, _)) if app == application => Ownership::Copy,
        Some((app, _)) => Ownership::OtherApplication(app.to_string()),
        None => Ownership::Unowned,
    }
}

pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// The body relbot applies for a manifest, and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredBody {
    pub body: Value,
    pub hash: String,
    /// JSON pointers that ignore rules removed (reported in the plan).
    pub ignored: Vec<String>,
}

/// Builds the apply body: ignore rules applied, `status` dropped, relbot's
/// labels and tracking annotations added, then the hash of all that stored
/// as an annotation.
pub fn desired_body(manifest: &Manifest, app: &Application, installation: &str) -> DesiredBody {
    desired_body_of(&manifest.key(), manifest.object.clone(), app, installation)
}

/// [`desired_body`] of an object the caller gives up: the rendered object
/// becomes the body in place, so a large application is not held twice.
pub fn desired_body_of(
    key: &ObjectKey,
    object: Value,
    app: &Application,
    installation: &str,
) -> DesiredBody {
    let mut body = object;
    let ignored = apply_ignore_rules(&mut body, key, &app.ignore);
    if let Some(map) = body.as_object_mut() {
        map.remove("status");
    }
    let metadata = ensure_object(&mut body, "metadata");
    // A server-assigned field copied into git would make every apply conflict.
    for server_owned in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        metadata.remove(server_owned);
    }
    let labels = ensure_map(metadata, "labels");
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels.insert(APPLICATION_LABEL.into(), app.name.clone().into());
    let annotations = ensure_map(metadata, "annotations");
    annotations.insert(
        TRACKING_ANNOTATION.into(),
        tracking_id(&app.name, key).into(),
    );
    annotations.insert(INSTALLATION_ANNOTATION.into(), installation.into());
    annotations.remove(HASH_ANNOTATION);
    let hash = content_hash(&body);
    ensure_map(ensure_object(&mut body, "metadata"), "annotations")
        .insert(HASH_ANNOTATION.into(), hash.clone().into());
    DesiredBody {
        body,
        hash,
        ignored,
    }
}

fn ensure_object<'a>(value: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    let map = value
        .as_object_mut()
        .expect("a Kubernetes object is a JSON object");
    ensure_map(map, field)
}

fn ensure_map<'a>(map: &'a mut Map<String, Value>, field: &str) -> &'a mut Map<String, Value> {
    let entry = map
        .entry(field.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

/// Removes the fields that ignore rules hand to other owners; returns the
/// pointers that were present and removed.
pub fn apply_ignore_rules(body: &mut Value, key: &ObjectKey, rules: &[IgnoreRule]) -> Vec<String> {
    let mut removed = Vec::new();
    for rule in rules.iter().filter(|r| rule_matches(r, key)) {
        for pointer in &rule.json_pointers {
            if remove_pointer(body, pointer) {
                removed.push(pointer.clone());
            }
        }
    }
    removed
}

fn rule_matches(rule: &IgnoreRule, key: &ObjectKey) -> bool {
    let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    matches(&rule.group, &key.group)
        && matches(&rule.kind, &key.kind)
        && matches(&rule.name, &key.name)
        && matches(&rule.namespace, key.namespace.as_deref().unwrap_or(""))
}

/// RFC 6901 removal; `true` when something was removed.
fn remove_pointer(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = if parent.is_empty() {
        Some(value)
    } else {
        value.pointer_mut(parent)
    };
    match parent {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// sha256 of the body with object keys sorted, so YAML key order and
/// re-formatting do not count as a change. 16 bytes of hex are plenty to
/// tell two versions of one object apart.
pub fn content_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// relbot's own `managedFields` entry (manager `relbot`, operation `Apply`).
pub fn relbot_fields(live: &Value) -> Option<&Value> {
    fields::applied_fields(live, FIELD_MANAGER)
}

/// The cost model's "unchanged" test, made on a listed object alone: it
/// carries the hash of the body we want to apply now, and relbot still owns
/// every field of that body. Any other writer that changed one of those
/// fields (kubectl edit, an operator, a forced apply) took its ownership, so
/// a drifted object fails the second half without relbot ever reading its
/// values.
pub fn is_unchanged(live: &Value, desired: &DesiredBody) -> bool {
    annotation(live, HASH_ANNOTATION) == Some(desired.hash.as_str())
        && relbot_fields(live).is_some_and(|set| fields::covers_object(set, &desired.body, live))
}

/// Parsed `relbot.dev/sync-options`: `Replace=true` or `Force=true` allow a
/// delete-and-create when an immutable field changed.
pub fn recreate_allowed(object: &Value) -> bool {
    annotation(object, SYNC_OPTIONS_ANNOTATION).is_some_and(|options| {
        options
            .split(',')
            .map(str::trim)
            .any(|o| o.eq_ignore_ascii_case("Replace=true") || o.eq_ignore_ascii_case("Force=true"))
    })
}

/// Why a live object must not be pruned, if it must not.
pub fn prune_protection(live: &Value, key: &ObjectKey, app: &Application) -> Option<String> {
    if annotation(live, PRUNE_ANNOTATION) == Some("false") {
        return Some(format!("annotated {PRUNE_ANNOTATION}: \"false\""));
    }
    if key.group.is_empty()
        && key.kind == "PersistentVolumeClaim"
        && !app.sync.prune_persistent_volume_claims
    {
        return Some(
            "PersistentVolumeClaims hold data; set sync.prunePersistentVolumeClaims: true to prune them"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    const INSTALLATION: &str = "relbot";

    fn app() -> Application {
        serde_saphyr::from_str("name: shop\npath: apps/shop\n").unwrap()
    }

    fn manifest(object: Value) -> Manifest {
        Manifest {
            object,
            origin: Origin {
                file: "d.yaml".into(),
                line: 1,
            },
        }
    }

    fn deployment() -> Manifest {
        manifest(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
            ]}}}
        }))
    }

    #[test]
    fn body_is_labelled_tracked_and_hashed() {
        let d = desired_body(&deployment(), &app(), INSTALLATION);
        assert_eq!(label(&d.body, APPLICATION_LABEL), Some("shop"));
        assert_eq!(label(&d.body, MANAGED_BY_LABEL), Some("relbot"));
        assert_eq!(
            annotation(&d.body, TRACKING_ANNOTATION),
            Some("shop:apps/Deployment:shop/web")
        );
        assert_eq!(annotation(&d.body, HASH_ANNOTATION), Some(d.hash.as_str()));
        assert_eq!(d.hash.len(), 32);
    }

    #[test]
    fn hash_ignores_key_order_but_not_values() {
        let a = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}));
        let b = manifest(json!({"kind": "ConfigMap", "apiVersion": "v1",
            "data": {"b": "2", "a": "1"}, "metadata": {"name": "c"}}));
        let c = manifest(json!({"kind": "ConfigMap", "apiVersion": "v1",
            "data": {"b": "3", "a": "1"}, "metadata": {"name": "c"}}));
        assert_eq!(
            desired_body(&a, &app(), INSTALLATION).hash,
            desired_body(&b, &app(), INSTALLATION).hash
        );
        assert_ne!(
            desired_body(&a, &app(), INSTALLATION).hash,
            desired_body(&c, &app(), INSTALLATION).hash
        );
    }

    #[test]
    fn ignore_rules_remove_fields_from_the_body() {
        let mut app = app();
        app.ignore = vec![IgnoreRule {
            group: None,
            kind: Some("Deployment".into()),
            name: None,
            namespace: None,
            json_pointers: vec!["/spec/replicas".into(), "/spec/missing".into()],
        }];
        let d = desired_body(&deployment(), &app, INSTALLATION);
        assert!(d.body["spec"].get("replicas").is_none());
        assert_eq!(d.ignored, vec!["/spec/replicas".to_string()]);
    }

    #[test]
    fn ownership_from_tracking_id() {
        let key = deployment().key();
        let body = desired_body(&deployment(), &app(), INSTALLATION).body;
        assert_eq!(
            ownership("shop", INSTALLATION, &key, &body),
            Ownership::Ours
        );
        assert_eq!(
            ownership("other", INSTALLATION, &key, &body),
            Ownership::OtherApplication("shop".into())
        );
        let mut moved = key.clone();
        moved.namespace = Some("elsewhere".into());
        assert_eq!(
            ownership("shop", INSTALLATION, &moved, &body),
            Ownership::Copy
        );
        assert_eq!(
            ownership("shop", INSTALLATION, &key, &json!({"metadata": {}})),
            Ownership::Unowned
        );
    }

    /// Two relbots on one cluster, each with an application `shop`: neither
    /// takes (or prunes) the other's objects; one applied before relbot
    /// stamped its installation is still its own.
    #[test]
    fn ownership_is_per_installation() {
        let key = deployment().key();
        let body = desired_body(&deployment(), &app(), INSTALLATION).body;
        assert_eq!(
            annotation(&body, INSTALLATION_ANNOTATION),
            Some(INSTALLATION)
        );
        assert_eq!(
            ownership("shop", "team-b-relbot", &key, &body),
            Ownership::OtherInstallation(INSTALLATION.into())
        );
        let mut before = body.clone();
        before["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(INSTALLATION_ANNOTATION);
        assert_eq!(
            ownership("shop", "team-b-relbot", &key, &before),
            Ownership::Ours
        );
    }

    fn live_with_fields(body: &Value, fields: Value) -> Value {
        let mut live = body.clone();
        live["metadata"]["managedFields"] = json!([
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
            {"manager": "relbot", "operation": "Apply", "fieldsV1": fields}
        ]);
        live
    }

    fn full_fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}, "f:relbot.dev/application": {}},
                "f:annotations": {"f:relbot.dev/tracking-id": {}, "f:relbot.dev/installation": {}, "f:relbot.dev/applied-hash": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
            }}}}
        })
    }

    #[test]
    fn unchanged_needs_hash_and_full_ownership() {
        let desired = desired_body(&deployment(), &app(), INSTALLATION);
        let live = live_with_fields(&desired.body, full_fields());
        assert!(is_unchanged(&live, &desired));

        // Someone else took the image (kubectl set image): drift.
        let mut fields = full_fields();
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
            .as_object_mut()
            .unwrap()
            .remove("f:image");
        assert!(!is_unchanged(
            &live_with_fields(&desired.body, fields),
            &desired
        ));

        // Someone else took replicas (an HPA scaling): drift too.
        let mut fields = full_fields();
        fields["f:spec"]
            .as_object_mut()
            .unwrap()
            .remove("f:replicas");
        assert!(!is_unchanged(
            &live_with_fields(&desired.body, fields),
            &desired
        ));

        // A different hash means git changed.
        let mut stale = live.clone();
        stale["metadata"]["annotations"][HASH_ANNOTATION] = json!("0000");
        assert!(!is_unchanged(&stale, &desired));
    }

    #[test]
    fn sync_options_and_prune_protection() {
        let mut m = deployment();
        assert!(!recreate_allowed(&m.object));
        m.object["metadata"]["annotations"] =
            json!({SYNC_OPTIONS_ANNOTATION: "Prune=false, Replace=true"});
        assert!(recreate_allowed(&m.object));

        let pvc_key = ObjectKey {
            group: String::new(),
            kind: "PersistentVolumeClaim".into(),
            namespace: Some("shop".into()),
            name: "data".into(),
        };
        assert!(prune_protection(&json!({}), &pvc_key, &app()).is_some());
        let keep = json!({"metadata": {"annotations": {PRUNE_ANNOTATION: "false"}}});
        assert!(prune_protection(&keep, &deployment().key(), &app()).is_some());
        assert!(prune_protection(&json!({}), &deployment().key(), &app()).is_none());
    }
}
