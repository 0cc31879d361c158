//! Where kustomize puts labels and annotations beyond `metadata`: pod
//! templates and selectors per kind, and how one such place is written.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One place kustomize puts labels: `path` under objects of `kind` (and
/// `group`, when given); `create` makes missing maps.
pub(super) struct FieldSpec {
    group: Option<&'static str>,
    kind: &'static str,
    path: &'static str,
    create: bool,
}

const fn spec(
    group: Option<&'static str>,
    kind: &'static str,
    path: &'static str,
    create: bool,
) -> FieldSpec {
    FieldSpec {
        group,
        kind,
        path,
        create,
    }
}

/// Pod template labels (kustomize `labels[].includeTemplates`).
pub(super) const TEMPLATE_LABELS: &[FieldSpec] = &[
    spec(
        Some(""),
        "ReplicationController",
        "spec/template/metadata/labels",
        true,
    ),
    spec(None, "Deployment", "spec/template/metadata/labels", true),
    spec(None, "ReplicaSet", "spec/template/metadata/labels", true),
    spec(None, "DaemonSet", "spec/template/metadata/labels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/metadata/labels",
        true,
    ),
    spec(Some("batch"), "Job", "spec/template/metadata/labels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/volumeClaimTemplates/metadata/labels",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/metadata/labels",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

/// Selectors (kustomize `commonLabels`, `labels[].includeSelectors`).
pub(super) const SELECTOR_LABELS: &[FieldSpec] = &[
    spec(Some(""), "Service", "spec/selector", true),
    spec(Some(""), "ReplicationController", "spec/selector", true),
    spec(None, "Deployment", "spec/selector/matchLabels", true),
    spec(None, "ReplicaSet", "spec/selector/matchLabels", true),
    spec(None, "DaemonSet", "spec/selector/matchLabels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/selector/matchLabels",
        true,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    spec(Some("batch"), "Job", "spec/selector/matchLabels", false),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    spec(
        Some("policy"),
        "PodDisruptionBudget",
        "spec/selector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/podSelector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
];

/// Pod template annotations (kustomize `commonAnnotations`).
pub(super) const TEMPLATE_ANNOTATIONS: &[FieldSpec] = &[
    spec(
        Some(""),
        "ReplicationController",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "Deployment",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "ReplicaSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "DaemonSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "Job",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

pub(super) fn apply_specs(
    value: &mut Value,
    specs: &[&FieldSpec],
    pairs: &BTreeMap<String, String>,
) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let group = crate::manifest::split_api_version(
        value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
    .0
    .to_string();
    for spec in specs {
        if spec.kind == kind && spec.group.is_none_or(|g| g == group) {
            let path: Vec<&str> = spec.path.split('/').collect();
            merge_at(value, &path, pairs, spec.create);
        }
    }
}

/// Merges `pairs` into the map at `path`, fanning out over sequences on the
/// way (kustomize's `from/podSelector` walks every `from` entry).
pub(super) fn merge_at(
    value: &mut Value,
    path: &[&str],
    pairs: &BTreeMap<String, String>,
    create: bool,
) {
    match value {
        Value::Array(items) => {
            for item in items {
                merge_at(item, path, pairs, create);
            }
        }
        Value::Object(map) => {
            let Some((first, rest)) = path.split_first() else {
                for (k, v) in pairs {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                return;
            };
            let missing = map.get(*first).is_none_or(Value::is_null);
            if missing {
                if !create {
                    return;
                }
                map.insert((*first).to_string(), Value::Object(Map::new()));
            }
            if let Some(child) = map.get_mut(*first) {
                merge_at(child, rest, pairs, create);
            }
        }
        _ => {}
    }
}
