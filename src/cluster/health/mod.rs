//! Health per kind, from the object alone (no extra requests).
//!
//! Workloads follow `kubectl rollout status`; custom resources follow kstatus
//! (`Ready`, `Stalled`, `Reconciling`, `observedGeneration`). Objects without
//! a status (ConfigMaps, RBAC…) are healthy once they exist.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Ordered from best to worst, so an application's health is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthStatus {
    Healthy,
    Suspended,
    Progressing,
    Unknown,
    Missing,
    Degraded,
}

impl HealthStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Unknown => "Unknown",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
        }
    }

    /// Whether a wave gate may move on (Suspended counts: it is what git asked for).
    pub fn passes_gate(&self) -> bool {
        matches!(self, HealthStatus::Healthy | HealthStatus::Suspended)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Health {
    fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Health {
            status,
            message: message.into(),
        }
    }
    fn healthy() -> Self {
        Health::new(HealthStatus::Healthy, "")
    }
    fn progressing(message: impl Into<String>) -> Self {
        Health::new(HealthStatus::Progressing, message)
    }
    fn degraded(message: impl Into<String>) -> Self {
        Health::new(HealthStatus::Degraded, message)
    }
    pub fn missing() -> Self {
        Health::new(HealthStatus::Missing, "not found in the cluster")
    }
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(kind))
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"].as_str() == Some(status))
}

fn condition_message(object: &Value, kind: &str) -> String {
    condition(object, kind)
        .map(|c| {
            let reason = c["reason"].as_str().unwrap_or("");
            let message = c["message"].as_str().unwrap_or("");
            match (reason.is_empty(), message.is_empty()) {
                (false, false) => format!("{reason}: {message}"),
                (false, true) => reason.to_string(),
                _ => message.to_string(),
            }
        })
        .unwrap_or_default()
}

/// The status controller has not caught up with the latest spec yet.
fn not_observed(object: &Value) -> bool {
    match (
        int(object, "/metadata/generation"),
        int(object, "/status/observedGeneration"),
    ) {
        (Some(generation), Some(observed)) => observed < generation,
        _ => false,
    }
}

pub fn assess(object: &Value) -> Health {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") => replica_set(object),
        ("batch", "Job") => job(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Service") => service(object),
        ("", "Pod") => pod(object),
        ("", "Namespace") => match str_at(object, "/status/phase") {
            Some("Terminating") => Health::progressing("namespace is terminating"),
            _ => Health::healthy(),
        },
        ("networking.k8s.io", "Ingress") => ingress(object),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if condition_is(object, "Established", "True") {
                Health::healthy()
            } else {
                Health::progressing("waiting for the CRD to be Established")
            }
        }
        _ => kstatus(object),
    }
}

fn deployment(d: &Value) -> Health {
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::new(HealthStatus::Suspended, "rollout is paused");
    }
    if condition(d, "Progressing")
        .is_some_and(|c| c["reason"].as_str() == Some("ProgressDeadlineExceeded"))
    {
        return Health::degraded(format!(
            "ProgressDeadlineExceeded: {}",
            condition_message(d, "Progressing")
        ));
    }
    if not_observed(d) {
        return Health::progressing("waiting for the rollout to be observed");
    }
    let want = int(d, "/spec/replicas").unwrap_or(1);
    let updated = int(d, "/status/updatedReplicas").unwrap_or(0);
    let total = int(d, "/status/replicas").unwrap_or(0);
    let available = int(d, "/status/availableReplicas").unwrap_or(0);
    if updated < want {
        return Health::progressing(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Health::progressing(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Health::progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Health::healthy()
}

fn stateful_set(s: &Value) -> Health {
    if not_observed(s) {
        return Health::progressing("waiting for the rollout to be observed");
    }
    let want = int(s, "/spec/replicas").unwrap_or(1);
    let ready = int(s, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Health::progressing(format!("{ready} of {want} replicas ready"));
    }
    let on_delete = str_at(s, "/spec/updateStrategy/type") == Some("OnDelete");
    if !on_delete {
        if let (Some(current), Some(update)) = (
            str_at(s, "/status/currentRevision"),
            str_at(s, "/status/updateRevision"),
        ) && current != update
        {
            return Health::progressing("rolling update in progress");
        }
        let updated = int(s, "/status/updatedReplicas").unwrap_or(want);
        if updated < want {
            return Health::progressing(format!("{updated} of {want} replicas updated"));
        }
    }
    Health::healthy()
}

fn daemon_set(d: &Value) -> Health {
    if not_observed(d) {
        return Health::progressing("waiting for the rollout to be observed");
    }
    let want = int(d, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(d, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(d, "/status/numberAvailable").unwrap_or(0);
    if str_at(d, "/spec/updateStrategy/type") != Some("OnDelete") && updated < want {
        return Health::progressing(format!("{updated} of {want} pods updated"));
    }
    if available < want {
        return Health::progressing(format!("{available} of {want} pods available"));
    }
    Health::healthy()
}

fn replica_set(r: &Value) -> Health {
    if not_observed(r) {
        return Health::progressing("waiting for the replica set to be observed");
    }
    let want = int(r, "/spec/replicas").unwrap_or(1);
    let available = int(r, "/status/availableReplicas").unwrap_or(0);
    if available < want {
        return Health::progressing(format!("{available} of {want} replicas available"));
    }
    Health::healthy()
}

fn job(j: &Value) -> Health {
    if condition_is(j, "Failed", "True") {
        return Health::degraded(condition_message(j, "Failed"));
    }
    if condition_is(j, "Complete", "True") {
        return Health::healthy();
    }
    if j.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Health::new(HealthStatus::Suspended, "job is suspended");
    }
    Health::progressing("job is running")
}

fn pvc(p: &Value) -> Health {
    match str_at(p, "/status/phase") {
        Some("Bound") => Health::healthy(),
        Some("Lost") => Health::degraded("the claim lost its volume"),
        _ => Health::progressing("waiting for the claim to be bound"),
    }
}

fn has_address(object: &Value) -> bool {
    object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn service(s: &Value) -> Health {
    if str_at(s, "/spec/type") == Some("LoadBalancer") && !has_address(s) {
        return Health::progressing("waiting for a load-balancer address");
    }
    Health::healthy()
}

fn pod(p: &Value) -> Health {
    match str_at(p, "/status/phase") {
        Some("Succeeded") => Health::healthy(),
        Some("Failed") => Health::degraded(
            str_at(p, "/status/message")
                .unwrap_or("pod failed")
                .to_string(),
        ),
        Some("Running") if condition_is(p, "Ready", "True") => Health::healthy(),
        _ => Health::progressing("pod is not ready"),
    }
}

fn ingress(i: &Value) -> Health {
    if has_address(i) {
        return Health::healthy();
    }
    // K3s ships Traefik, which often publishes no address in Ingress status.
    let class = str_at(i, "/spec/ingressClassName")
        .or_else(|| str_at(i, "/metadata/annotations/kubernetes.io~1ingress.class"))
        .unwrap_or("");
    if class == "traefik" {
        return Health::healthy();
    }
    Health::progressing("waiting for an address")
}

fn hpa(h: &Value) -> Health {
    for kind in ["AbleToScale", "ScalingActive"] {
        if let Some(c) = condition(h, kind)
            && c["status"].as_str() == Some("False")
            && c["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Failed"))
        {
            return Health::degraded(condition_message(h, kind));
        }
    }
    Health::healthy()
}

/// kstatus rules for kinds relbot has no specific knowledge of.
fn kstatus(object: &Value) -> Health {
    if condition_is(object, "Stalled", "True") {
        return Health::degraded(condition_message(object, "Stalled"));
    }
    if not_observed(object) {
        return Health::progressing("waiting for the controller to observe the latest spec");
    }
    if condition_is(object, "Reconciling", "True") {
        return Health::progressing(condition_message(object, "Reconciling"));
    }
    if condition_is(object, "Ready", "False") {
        return Health::progressing(condition_message(object, "Ready"));
    }
    Health::healthy()
}

/// The worst of several.
pub fn worst<'a>(healths: impl IntoIterator<Item = &'a HealthStatus>) -> HealthStatus {
    healths
        .into_iter()
        .copied()
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 2},
            "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployment_rollout() {
        let done = deploy(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(assess(&done).status, HealthStatus::Healthy);
        let stale = deploy(
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(assess(&stale).status, HealthStatus::Progressing);
        let rolling = deploy(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(assess(&rolling).status, HealthStatus::Progressing);
        let stuck = deploy(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        let h = assess(&stuck);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.message.contains("ProgressDeadlineExceeded"));
    }

    #[test]
    fn jobs_claims_services_ingresses() {
        let failed = json!({"apiVersion": "batch/v1", "kind": "Job",
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(assess(&failed).status, HealthStatus::Degraded);
        let pending = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}});
        assert_eq!(assess(&pending).status, HealthStatus::Progressing);
        let lb = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}});
        assert_eq!(assess(&lb).status, HealthStatus::Progressing);
        let traefik = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "spec": {"ingressClassName": "traefik"}, "status": {}});
        assert_eq!(assess(&traefik).status, HealthStatus::Healthy);
        let nginx = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "spec": {"ingressClassName": "nginx"}, "status": {}});
        assert_eq!(assess(&nginx).status, HealthStatus::Progressing);
    }

    #[test]
    fn custom_resources_follow_kstatus_and_worst_wins() {
        let stalled = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "Broken"}]}});
        assert_eq!(assess(&stalled).status, HealthStatus::Degraded);
        let ready = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(assess(&ready).status, HealthStatus::Healthy);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_eq!(assess(&cm).status, HealthStatus::Healthy);
        assert_eq!(
            worst(&[
                HealthStatus::Healthy,
                HealthStatus::Degraded,
                HealthStatus::Progressing
            ]),
            HealthStatus::Degraded
        );
    }
}
