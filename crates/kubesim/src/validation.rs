//! Validation kube-apiserver performs that relbot meets: unknown fields of
//! built-in kinds (checked by a typed round trip through k8s-openapi),
//! immutable fields, names, and selector/template agreement.

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, networking::v1 as networking,
    policy::v1 as policy, rbac::v1 as rbac, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use serde_json::Value;

use crate::defaults;
use crate::discovery::ResourceInfo;
use crate::status::{ApiError, ApiResult};

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The typed round trip for a built-in kind, or `None` for kinds without a table entry.
fn typed(res: &ResourceInfo, v: &Value) -> Option<Result<Value, String>> {
    if res.group == "events.k8s.io" {
        return Some(round_trip::<k8s_openapi::api::events::v1::Event>(v));
    }
    Some(match res.kind.as_str() {
        "Namespace" => round_trip::<core::Namespace>(v),
        "ConfigMap" => round_trip::<core::ConfigMap>(v),
        "Secret" => round_trip::<core::Secret>(v),
        "Service" => round_trip::<core::Service>(v),
        "ServiceAccount" => round_trip::<core::ServiceAccount>(v),
        "PersistentVolumeClaim" => round_trip::<core::PersistentVolumeClaim>(v),
        "Pod" => round_trip::<core::Pod>(v),
        "Event" => round_trip::<core::Event>(v),
        "Deployment" => round_trip::<apps::Deployment>(v),
        "StatefulSet" => round_trip::<apps::StatefulSet>(v),
        "DaemonSet" => round_trip::<apps::DaemonSet>(v),
        "ReplicaSet" => round_trip::<apps::ReplicaSet>(v),
        "ControllerRevision" => round_trip::<apps::ControllerRevision>(v),
        "Job" => round_trip::<batch::Job>(v),
        "CronJob" => round_trip::<batch::CronJob>(v),
        "Ingress" => round_trip::<networking::Ingress>(v),
        "IngressClass" => round_trip::<networking::IngressClass>(v),
        "NetworkPolicy" => round_trip::<networking::NetworkPolicy>(v),
        "HorizontalPodAutoscaler" => round_trip::<autoscaling::HorizontalPodAutoscaler>(v),
        "PodDisruptionBudget" => round_trip::<policy::PodDisruptionBudget>(v),
        "Role" => round_trip::<rbac::Role>(v),
        "RoleBinding" => round_trip::<rbac::RoleBinding>(v),
        "ClusterRole" => round_trip::<rbac::ClusterRole>(v),
        "ClusterRoleBinding" => round_trip::<rbac::ClusterRoleBinding>(v),
        "CustomResourceDefinition" => round_trip::<apiext::CustomResourceDefinition>(v),
        "Lease" => round_trip::<coordination::Lease>(v),
        "StorageClass" => round_trip::<storage::StorageClass>(v),
        _ => return None,
    })
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn unknown_walk(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    None if !empty(v) => out.push(p),
                    None => {}
                    Some(tv) => unknown_walk(v, tv, &p, out),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) if i.len() == t.len() => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                unknown_walk(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Outcome of the schema check of a built-in kind.
pub enum SchemaCheck {
    Ok,
    /// Paths such as `spec.foo` that the kind does not declare.
    Unknown(Vec<String>),
    /// The object does not decode at all (wrong types, missing required fields).
    Undecodable(String),
}

/// Fields of a custom resource its structural schema does not declare.
fn unknown_by_schema(v: &Value, node: &Value, path: &str, out: &mut Vec<String>) {
    if node["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, cv) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match node["properties"].get(k) {
                    Some(child) => unknown_by_schema(cv, child, &p, out),
                    None => match node.get("additionalProperties") {
                        Some(Value::Bool(true)) => {}
                        Some(ap @ Value::Object(_)) => unknown_by_schema(cv, ap, &p, out),
                        _ => out.push(p),
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for (n, item) in items.iter().enumerate() {
                    unknown_by_schema(item, item_schema, &format!("{path}[{n}]"), out);
                }
            }
        }
        _ => {}
    }
}

pub fn check_schema(res: &ResourceInfo, obj: &Value) -> SchemaCheck {
    if res.custom {
        let mut out = Vec::new();
        if let Some(schema) = res.schema.as_deref() {
            unknown_by_schema(obj, schema, "", &mut out);
        }
        return if out.is_empty() {
            SchemaCheck::Ok
        } else {
            SchemaCheck::Unknown(out)
        };
    }
    match typed(res, obj) {
        None => SchemaCheck::Ok,
        Some(Err(e)) => SchemaCheck::Undecodable(e),
        Some(Ok(t)) => {
            let mut out = Vec::new();
            unknown_walk(obj, &t, "", &mut out);
            if out.is_empty() {
                SchemaCheck::Ok
            } else {
                SchemaCheck::Unknown(out)
            }
        }
    }
}

/// Removes the fields at `paths` (as produced by [`check_schema`]).
pub fn prune(obj: &mut Value, paths: &[String]) {
    for p in paths {
        let mut parts: Vec<&str> = p.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut ptr = String::new();
        for part in parts {
            let (field, idx) = match part.split_once('[') {
                Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            ptr.push('/');
            ptr.push_str(&field.replace('~', "~0").replace('/', "~1"));
            if let Some(i) = idx {
                ptr.push_str(&format!("/{i}"));
            }
        }
        if let Some(m) = obj.pointer_mut(&ptr).and_then(Value::as_object_mut) {
            m.remove(last);
        }
    }
}

/// RFC 1123 subdomain, the rule for most object names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn immutable(path: &str, v: &Value) -> (String, String) {
    (
        path.into(),
        format!("Invalid value: {v}: field is immutable"),
    )
}

/// Resources a request may sit below its limit for (`helper.IsOvercommitAllowed`):
/// the native ones except huge pages; extended resources must match exactly.
fn overcommit_allowed(resource: &str) -> bool {
    let native = match resource.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    };
    native && !resource.starts_with("hugepages-")
}

/// `ValidateResourceRequirements`: each request with a limit stays within it.
/// Quantities are canonical by now (defaults ran), as the messages print them.
fn requests_within_limits(at: &str, pod: &Value, causes: &mut Vec<(String, String)>) {
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(containers) = pod[list].as_array() else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
            let Some(requests) = requests.as_object() else {
                continue;
            };
            for (resource, request) in requests {
                let (Some(req), Some(lim)) = (request.as_str(), limits[resource].as_str()) else {
                    continue;
                };
                let (Some(r), Some(l)) =
                    (defaults::quantity_nanos(req), defaults::quantity_nanos(lim))
                else {
                    continue;
                };
                let why = if r != l && !overcommit_allowed(resource) {
                    format!("must be equal to {resource} limit of {lim}")
                } else if r > l {
                    format!("must be less than or equal to {resource} limit of {lim}")
                } else {
                    continue;
                };
                causes.push((
                    format!("{at}.{list}[{i}].resources.requests"),
                    format!("Invalid value: \"{req}\": {why}"),
                ));
            }
        }
    }
}

/// Checks a create (`old = None`) or an update of `res`.
pub fn validate(res: &ResourceInfo, old: Option<&Value>, new: &Value) -> ApiResult<()> {
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes: Vec<(String, String)> = Vec::new();
    let rbac = res.group == "rbac.authorization.k8s.io";
    if old.is_none() && !rbac && !res.custom && !valid_name(name) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    if res.group.is_empty() && matches!(res.kind.as_str(), "ConfigMap" | "Secret") {
        // kube-apiserver: the keys and values of data and binaryData together
        // may not exceed 1 MiB (core.MaxSecretSize, also used for ConfigMaps).
        const MAX_DATA_BYTES: usize = 1024 * 1024;
        let size: usize = ["data", "binaryData", "stringData"]
            .iter()
            .filter_map(|field| new[*field].as_object())
            .flat_map(|map| map.iter())
            .map(|(key, value)| key.len() + value.as_str().map_or(0, str::len))
            .sum();
        if size > MAX_DATA_BYTES {
            causes.push((
                "[]".into(),
                // The wording of kube-apiserver 1.32+ (`field.TooLong`), the
                // versions the emulator's /version stands for; 1.31 and older
                // said "must have at most N bytes".
                format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
            ));
        }
    }
    let spec = &new["spec"];
    let pod_spec = match res.kind.as_str() {
        "Pod" => Some(("spec", spec)),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(("spec.template.spec", &spec["template"]["spec"]))
        }
        "CronJob" => Some((
            "spec.jobTemplate.spec.template.spec",
            &spec["jobTemplate"]["spec"]["template"]["spec"],
        )),
        _ => None,
    };
    if let (Some((at, pod)), false) = (pod_spec, res.custom) {
        requests_within_limits(at, pod, &mut causes);
    }
    if matches!(
        res.kind.as_str(),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
    ) {
        let sel = &spec["selector"]["matchLabels"];
        let labels = &spec["template"]["metadata"]["labels"];
        if let Some(sel) = sel.as_object()
            && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
        {
            causes.push((
                "spec.template.metadata.labels".into(),
                format!("Invalid value: {labels}: `selector` does not match template `labels`"),
            ));
        }
    }
    if let Some(old) = old {
        let os = &old["spec"];
        match res.kind.as_str() {
            "Deployment" | "DaemonSet" | "ReplicaSet" if os["selector"] != spec["selector"] => {
                causes.push(immutable("spec.selector", &spec["selector"]));
            }
            "StatefulSet" => {
                let mut a = os.clone();
                let mut b = spec.clone();
                for f in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object_mut()) {
                        a.remove(f);
                        b.remove(f);
                    }
                }
                if a != b {
                    causes.push(("spec".into(), "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into()));
                }
            }
            "Job" => {
                if os["selector"] != spec["selector"] {
                    causes.push(immutable("spec.selector", &spec["selector"]));
                }
                if os["template"] != spec["template"] {
                    causes.push(immutable("spec.template", &spec["template"]));
                }
                if os["completions"] != spec["completions"] {
                    causes.push(immutable("spec.completions", &spec["completions"]));
                }
            }
            "Service" => {
                let (o, n) = (&os["clusterIP"], &spec["clusterIP"]);
                if !o.is_null() && o != n {
                    causes.push((
                        "spec.clusterIPs[0]".into(),
                        format!("Invalid value: {n}: may not change once set"),
                    ));
                }
            }
            "PersistentVolumeClaim" => {
                let mut a = os.clone();
                let mut b = spec.clone();
                for v in [&mut a, &mut b] {
                    if let Some(m) = v.as_object_mut() {
                        m.remove("resources");
                        m.remove("volumeAttributesClassName");
                        m.remove("volumeName");
                    }
                }
                if a != b {
                    causes.push(("spec".into(), "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into()));
                }
            }
            "RoleBinding" | "ClusterRoleBinding" if old["roleRef"] != new["roleRef"] => {
                causes.push((
                    "roleRef".into(),
                    "Invalid value: rbac.RoleRef{…}: cannot change roleRef".into(),
                ));
            }
            "ConfigMap" | "Secret"
                if old["immutable"] == Value::Bool(true)
                    && (old["data"] != new["data"] || old["binaryData"] != new["binaryData"]) =>
            {
                causes.push((
                    "data".into(),
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
            _ => {}
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&res.kind_q(), name, &causes))
    }
}
