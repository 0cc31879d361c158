//! The table of served resources (built-in kinds plus CRD-served kinds) and
//! the discovery documents kube-apiserver derives from it.

use serde_json::{Value, json};

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource at one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub has_status: bool,
    pub has_scale: bool,
    /// `true` for kinds served from a CRD (list items keep apiVersion/kind, lists are atomic).
    pub custom: bool,
    /// The CRD's `openAPIV3Schema` for this version (custom kinds only).
    pub schema: Option<std::sync::Arc<Value>>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key shared by every version of a group/resource.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `Deployment.apps`, as used in Invalid messages.
    pub fn kind_q(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Kinds whose `metadata.generation` tracks spec changes.
    /// Where SSA takes list semantics from.
    pub fn ssa_schema(&self) -> crate::ssa::Schema<'_> {
        if self.custom {
            crate::ssa::Schema::Custom(self.schema.as_deref())
        } else {
            crate::ssa::Schema::Builtin(&self.kind)
        }
    }

    pub fn tracks_generation(&self) -> bool {
        self.custom
            || matches!(
                self.group.as_str(),
                "apps"
                    | "batch"
                    | "networking.k8s.io"
                    | "autoscaling"
                    | "policy"
                    | "apiextensions.k8s.io"
            )
    }
}

fn builtin(
    gv: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    scale: bool,
) -> ResourceInfo {
    let (group, version) = gv.split_once('/').unwrap_or(("", gv));
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        has_status: status,
        has_scale: scale,
        custom: false,
        schema: None,
    }
}

/// The built-in kinds kubesim serves.
pub fn builtins() -> Vec<ResourceInfo> {
    let ns = true;
    let cl = false;
    vec![
        builtin("v1", "Namespace", "namespaces", cl, &["ns"], true, false),
        builtin("v1", "ConfigMap", "configmaps", ns, &["cm"], false, false),
        builtin("v1", "Secret", "secrets", ns, &[], false, false),
        builtin("v1", "Service", "services", ns, &["svc"], true, false),
        builtin(
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            ns,
            &["sa"],
            false,
            false,
        ),
        builtin(
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            ns,
            &["pvc"],
            true,
            false,
        ),
        builtin("v1", "Pod", "pods", ns, &["po"], true, false),
        builtin("v1", "Event", "events", ns, &["ev"], false, false),
        builtin(
            "apps/v1",
            "Deployment",
            "deployments",
            ns,
            &["deploy"],
            true,
            true,
        ),
        builtin(
            "apps/v1",
            "StatefulSet",
            "statefulsets",
            ns,
            &["sts"],
            true,
            true,
        ),
        builtin(
            "apps/v1",
            "DaemonSet",
            "daemonsets",
            ns,
            &["ds"],
            true,
            false,
        ),
        builtin(
            "apps/v1",
            "ReplicaSet",
            "replicasets",
            ns,
            &["rs"],
            true,
            true,
        ),
        builtin(
            "apps/v1",
            "ControllerRevision",
            "controllerrevisions",
            ns,
            &[],
            false,
            false,
        ),
        builtin("batch/v1", "Job", "jobs", ns, &[], true, false),
        builtin("batch/v1", "CronJob", "cronjobs", ns, &["cj"], true, false),
        builtin(
            "networking.k8s.io/v1",
            "Ingress",
            "ingresses",
            ns,
            &["ing"],
            true,
            false,
        ),
        builtin(
            "networking.k8s.io/v1",
            "IngressClass",
            "ingressclasses",
            cl,
            &[],
            false,
            false,
        ),
        builtin(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "networkpolicies",
            ns,
            &["netpol"],
            false,
            false,
        ),
        builtin(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            ns,
            &["hpa"],
            true,
            false,
        ),
        builtin(
            "policy/v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            ns,
            &["pdb"],
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io/v1",
            "Role",
            "roles",
            ns,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rolebindings",
            ns,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "clusterroles",
            cl,
            &[],
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            cl,
            &[],
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            cl,
            &["crd", "crds"],
            true,
            false,
        ),
        builtin(
            "coordination.k8s.io/v1",
            "Lease",
            "leases",
            ns,
            &[],
            false,
            false,
        ),
        builtin(
            "events.k8s.io/v1",
            "Event",
            "events",
            ns,
            &["ev"],
            false,
            false,
        ),
        builtin(
            "storage.k8s.io/v1",
            "StorageClass",
            "storageclasses",
            cl,
            &["sc"],
            false,
            false,
        ),
    ]
}

/// Resources derived from a stored CRD: one per served version.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let short: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceInfo {
            group: group.into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: short.clone(),
            has_status: v["subresources"].get("status").is_some(),
            has_scale: v["subresources"].get("scale").is_some(),
            custom: true,
            schema: v["schema"]
                .get("openAPIV3Schema")
                .cloned()
                .map(std::sync::Arc::new),
        })
        .collect()
}

/// Groups in the order they are advertised, each with its versions.
pub fn groups(resources: &[ResourceInfo]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    out
}

pub fn version_doc() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

pub fn api_group_list(resources: &[ResourceInfo]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(resources: &[ResourceInfo], group: &str) -> Option<Value> {
    groups(resources)
        .iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| {
            let mut d = group_doc(g, vs);
            d["kind"] = json!("APIGroup");
            d["apiVersion"] = json!("v1");
            d
        })
}

fn resource_entries(r: &ResourceInfo) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
        "kind": r.kind, "verbs": ALL_VERBS, "shortNames": r.short_names,
        "storageVersionHash": "",
    })];
    if r.has_status {
        out.push(
            json!({"name": format!("{}/status", r.plural), "singularName": "",
            "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
        );
    }
    if r.has_scale {
        out.push(
            json!({"name": format!("{}/scale", r.plural), "singularName": "",
            "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
            "verbs": ["get", "patch", "update"]}),
        );
    }
    out
}

/// `APIResourceList` for one group/version, or `None` if not served.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let gv = rs[0].api_version();
    let entries: Vec<Value> = rs.iter().flat_map(|r| resource_entries(r)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}),
    )
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let rk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut subs = Vec::new();
    if r.has_status {
        subs.push(json!({"subresource": "status", "responseKind": rk, "verbs": ["get", "patch", "update"]}));
    }
    if r.has_scale {
        subs.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"]}));
    }
    json!({
        "resource": r.plural, "responseKind": rk,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular, "verbs": ALL_VERBS, "shortNames": r.short_names,
        "subresources": subs,
    })
}

/// `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2) for the core group (`core = true`, `/api`)
/// or for every named group (`/apis`).
pub fn aggregated(resources: &[ResourceInfo], core: bool) -> Value {
    let group_items: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources)
    };
    let items: Vec<Value> = group_items
        .iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = resources
                        .iter()
                        .filter(|r| &r.group == g && &r.version == v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}
