//! What relbot knows offline about Kubernetes' built-in kinds (1.33, the
//! APIs served by default): their API group, served versions, scope and the
//! typed `k8s-openapi` struct used to check an object's fields.
//!
//! Anything not in this table (CRD kinds such as Traefik's `Middleware`, K3s'
//! `HelmChart`) is *not* guessed: its scope comes from a CRD in the same render
//! or, at sync time, from API discovery.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, certificates, coordination, core, discovery,
    events, flowcontrol, networking, node, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A deserialisation into the kind's typed struct failed: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedError {
    /// Path of the offending value inside the object.
    pub path: Vec<crate::source::yaml::PathSeg>,
    pub message: String,
}

/// Deserialises an object into its typed struct and serialises it back; keys
/// present in the input but absent from the output are fields Kubernetes
/// does not know at that place.
pub(crate) type RoundTrip = fn(&Value) -> Result<Value, TypedError>;

/// One built-in kind.
#[derive(Debug)]
pub struct KindInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub kind: &'static str,
    pub scope: Scope,
    /// Served versions, the preferred one first, each with its typed check.
    pub(crate) versions: &'static [(&'static str, RoundTrip)],
}

impl KindInfo {
    pub fn preferred_version(&self) -> &'static str {
        self.versions[0].0
    }

    /// `apps/v1`, `v1`.
    pub fn preferred_api_version(&self) -> String {
        api_version(self.group, self.preferred_version())
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|(v, _)| *v == version)
    }

    pub(crate) fn round_trip(&self, version: &str) -> Option<RoundTrip> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, f)| *f)
    }
}

pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, TypedError> {
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| TypedError {
        path: crate::source::yaml::path_from_serde(e.path()),
        message: e.inner().to_string(),
    })?;
    serde_json::to_value(&typed).map_err(|e| TypedError {
        path: Vec::new(),
        message: e.to_string(),
    })
}

use Scope::{Cluster, Namespaced};

macro_rules! kind {
    ($group:expr, $kind:literal, $scope:expr, [$($version:literal => $ty:ty),+]) => {
        KindInfo { group: $group, kind: $kind, scope: $scope, versions: &[$(($version, typed::<$ty> as RoundTrip)),+] }
    };
}

/// Built-in kinds served by default by Kubernetes 1.33 (GA APIs).
static BUILTIN: &[KindInfo] = &[
    // core
    kind!("", "Binding", Namespaced, ["v1" => core::v1::Binding]),
    kind!("", "ComponentStatus", Cluster, ["v1" => core::v1::ComponentStatus]),
    kind!("", "ConfigMap", Namespaced, ["v1" => core::v1::ConfigMap]),
    kind!("", "Endpoints", Namespaced, ["v1" => core::v1::Endpoints]),
    kind!("", "Event", Namespaced, ["v1" => core::v1::Event]),
    kind!("", "LimitRange", Namespaced, ["v1" => core::v1::LimitRange]),
    kind!("", "Namespace", Cluster, ["v1" => core::v1::Namespace]),
    kind!("", "Node", Cluster, ["v1" => core::v1::Node]),
    kind!("", "PersistentVolume", Cluster, ["v1" => core::v1::PersistentVolume]),
    kind!("", "PersistentVolumeClaim", Namespaced, ["v1" => core::v1::PersistentVolumeClaim]),
    kind!("", "Pod", Namespaced, ["v1" => core::v1::Pod]),
    kind!("", "PodTemplate", Namespaced, ["v1" => core::v1::PodTemplate]),
    kind!("", "ReplicationController", Namespaced, ["v1" => core::v1::ReplicationController]),
    kind!("", "ResourceQuota", Namespaced, ["v1" => core::v1::ResourceQuota]),
    kind!("", "Secret", Namespaced, ["v1" => core::v1::Secret]),
    kind!("", "Service", Namespaced, ["v1" => core::v1::Service]),
    kind!("", "ServiceAccount", Namespaced, ["v1" => core::v1::ServiceAccount]),
    // apps
    kind!("apps", "ControllerRevision", Namespaced, ["v1" => apps::v1::ControllerRevision]),
    kind!("apps", "DaemonSet", Namespaced, ["v1" => apps::v1::DaemonSet]),
    kind!("apps", "Deployment", Namespaced, ["v1" => apps::v1::Deployment]),
    kind!("apps", "ReplicaSet", Namespaced, ["v1" => apps::v1::ReplicaSet]),
    kind!("apps", "StatefulSet", Namespaced, ["v1" => apps::v1::StatefulSet]),
    // batch, autoscaling, policy
    kind!("batch", "CronJob", Namespaced, ["v1" => batch::v1::CronJob]),
    kind!("batch", "Job", Namespaced, ["v1" => batch::v1::Job]),
    kind!("autoscaling", "HorizontalPodAutoscaler", Namespaced,
        ["v2" => autoscaling::v2::HorizontalPodAutoscaler, "v1" => autoscaling::v1::HorizontalPodAutoscaler]),
    kind!("policy", "PodDisruptionBudget", Namespaced, ["v1" => policy::v1::PodDisruptionBudget]),
    // networking
    kind!("networking.k8s.io", "Ingress", Namespaced, ["v1" => networking::v1::Ingress]),
    kind!("networking.k8s.io", "IngressClass", Cluster, ["v1" => networking::v1::IngressClass]),
    kind!("networking.k8s.io", "IPAddress", Cluster, ["v1" => networking::v1::IPAddress]),
    kind!("networking.k8s.io", "NetworkPolicy", Namespaced, ["v1" => networking::v1::NetworkPolicy]),
    kind!("networking.k8s.io", "ServiceCIDR", Cluster, ["v1" => networking::v1::ServiceCIDR]),
    kind!("discovery.k8s.io", "EndpointSlice", Namespaced, ["v1" => discovery::v1::EndpointSlice]),
    // rbac
    kind!("rbac.authorization.k8s.io", "ClusterRole", Cluster, ["v1" => rbac::v1::ClusterRole]),
    kind!("rbac.authorization.k8s.io", "ClusterRoleBinding", Cluster, ["v1" => rbac::v1::ClusterRoleBinding]),
    kind!("rbac.authorization.k8s.io", "Role", Namespaced, ["v1" => rbac::v1::Role]),
    kind!("rbac.authorization.k8s.io", "RoleBinding", Namespaced, ["v1" => rbac::v1::RoleBinding]),
    // storage
    kind!("storage.k8s.io", "CSIDriver", Cluster, ["v1" => storage::v1::CSIDriver]),
    kind!("storage.k8s.io", "CSINode", Cluster, ["v1" => storage::v1::CSINode]),
    kind!("storage.k8s.io", "CSIStorageCapacity", Namespaced, ["v1" => storage::v1::CSIStorageCapacity]),
    kind!("storage.k8s.io", "StorageClass", Cluster, ["v1" => storage::v1::StorageClass]),
    kind!("storage.k8s.io", "VolumeAttachment", Cluster, ["v1" => storage::v1::VolumeAttachment]),
    // cluster-wide plumbing
    kind!("apiextensions.k8s.io", "CustomResourceDefinition", Cluster,
        ["v1" => apiextensions::v1::CustomResourceDefinition]),
    kind!("apiregistration.k8s.io", "APIService", Cluster, ["v1" => apiregistration::v1::APIService]),
    kind!("admissionregistration.k8s.io", "MutatingWebhookConfiguration", Cluster,
        ["v1" => admissionregistration::v1::MutatingWebhookConfiguration]),
    kind!("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", Cluster,
        ["v1" => admissionregistration::v1::ValidatingWebhookConfiguration]),
    kind!("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", Cluster,
        ["v1" => admissionregistration::v1::ValidatingAdmissionPolicy]),
    kind!("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", Cluster,
        ["v1" => admissionregistration::v1::ValidatingAdmissionPolicyBinding]),
    kind!("certificates.k8s.io", "CertificateSigningRequest", Cluster,
        ["v1" => certificates::v1::CertificateSigningRequest]),
    kind!("coordination.k8s.io", "Lease", Namespaced, ["v1" => coordination::v1::Lease]),
    kind!("events.k8s.io", "Event", Namespaced, ["v1" => events::v1::Event]),
    kind!("flowcontrol.apiserver.k8s.io", "FlowSchema", Cluster, ["v1" => flowcontrol::v1::FlowSchema]),
    kind!("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", Cluster,
        ["v1" => flowcontrol::v1::PriorityLevelConfiguration]),
    kind!("node.k8s.io", "RuntimeClass", Cluster, ["v1" => node::v1::RuntimeClass]),
    kind!("scheduling.k8s.io", "PriorityClass", Cluster, ["v1" => scheduling::v1::PriorityClass]),
];

/// Groups whose every default-served kind is in the table above: a kind
/// there that the table does not know is a mistake, not a CRD.
const COMPLETE_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    // Served by nothing since Kubernetes 1.22; objects there are all mistakes.
    "extensions",
];

/// The built-in kind named by `group` + `kind`.
pub fn builtin(group: &str, kind: &str) -> Option<&'static KindInfo> {
    BUILTIN.iter().find(|k| k.group == group && k.kind == kind)
}

/// Built-in kinds with this name in any group (`Event` has two).
pub fn builtin_by_kind(kind: &str) -> impl Iterator<Item = &'static KindInfo> {
    BUILTIN.iter().filter(move |k| k.kind == kind)
}

/// Whether a group is one of Kubernetes' own (core, `*.k8s.io`, `apps`…),
/// as opposed to a CRD's group such as `traefik.io`.
pub fn is_kubernetes_group(group: &str) -> bool {
    COMPLETE_GROUPS.contains(&group)
        || group.ends_with(".k8s.io")
        || BUILTIN.iter().any(|k| k.group == group)
}

/// Whether every default-served kind of `group` is known here.
pub fn is_complete_group(group: &str) -> bool {
    COMPLETE_GROUPS.contains(&group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_is_namespaced_apps_v1() {
        let k = builtin("apps", "Deployment").unwrap();
        assert_eq!(k.scope, Scope::Namespaced);
        assert_eq!(k.preferred_api_version(), "apps/v1");
        assert!(!k.serves("v1beta2"));
        assert_eq!(builtin("", "Namespace").unwrap().scope, Scope::Cluster);
        assert_eq!(builtin_by_kind("Event").count(), 2);
    }

    #[test]
    fn hpa_prefers_v2_and_serves_v1() {
        let k = builtin("autoscaling", "HorizontalPodAutoscaler").unwrap();
        assert_eq!(k.preferred_api_version(), "autoscaling/v2");
        assert!(k.serves("v1"));
    }

    #[test]
    fn groups_are_classified() {
        assert!(is_kubernetes_group("apps"));
        assert!(is_kubernetes_group("networking.k8s.io"));
        assert!(is_kubernetes_group("extensions"));
        assert!(!is_kubernetes_group("traefik.io"));
        assert!(!is_kubernetes_group("helm.cattle.io"));
        assert!(is_complete_group(""));
        assert!(!is_complete_group("storage.k8s.io"));
    }

    #[test]
    fn round_trip_drops_unknown_fields_and_reports_type_errors() {
        let k = builtin("", "ConfigMap").unwrap();
        let check = k.round_trip("v1").unwrap();
        let out = check(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"x": "1"}, "bogus": 1}))
        .unwrap();
        assert!(out.get("bogus").is_none());
        assert_eq!(out["data"]["x"], "1");
        let err = check(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "annotations": {"n": 1}}}))
        .unwrap_err();
        assert_eq!(err.path.len(), 3, "{err:?}");
    }
}
