//! Health per kind, from the object alone (no extra requests).
//!
//! Workloads follow `kubectl rollout status`; pods, autoscalers and
//! aggregated APIs follow their controllers' conditions; other kinds follow
//! common conventions (kstatus conditions, `status.health`, `status.phase`,
//! see `generic`). Objects without a status (ConfigMaps, RBAC…) are healthy
//! once they exist. Users add per-kind rules in relbot.yaml (`rules`).

mod api;
mod autoscaler;
mod generic;
mod pod;
mod read;
mod rules;
mod services;
mod workloads;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use read::str_at;
pub use rules::HealthRules;

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
    /// Every status, best first.
    pub const ALL: [HealthStatus; 6] = [
        HealthStatus::Healthy,
        HealthStatus::Suspended,
        HealthStatus::Progressing,
        HealthStatus::Unknown,
        HealthStatus::Missing,
        HealthStatus::Degraded,
    ];

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

    /// Reads a stored health word (`Healthy`, `degraded`…): the inverse of
    /// [`Self::as_str`], case and surrounding blanks ignored; any other word
    /// is `Unknown`.
    pub fn parse(word: &str) -> Self {
        let word = word.trim();
        Self::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(word))
            .unwrap_or(HealthStatus::Unknown)
    }

    /// Whether a wave gate may move on. Suspended counts: it is what git
    /// asked for. Unknown counts too: relbot cannot judge the object, and
    /// waiting would not teach it more (Argo CD lets kinds without a health
    /// check through the same way); it still shows in the application's
    /// health, so a rule in relbot.yaml can settle it.
    pub fn passes_gate(&self) -> bool {
        matches!(
            self,
            HealthStatus::Healthy | HealthStatus::Suspended | HealthStatus::Unknown
        )
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

/// How relbot judges an object, built-in rules only.
pub fn assess(object: &Value) -> Health {
    assess_with(object, &HealthRules::default())
}

/// How relbot judges an object: being deleted first (whatever the kind
/// says, it is on its way out), then the user's rules for its kind, then
/// relbot's own per-kind reading.
pub fn assess_with(object: &Value, rules: &HealthRules) -> Health {
    if let Some(since) = str_at(object, "/metadata/deletionTimestamp") {
        return being_deleted(object, since);
    }
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    if let Some(h) = rules.judge(object, group, kind) {
        return h;
    }
    match (group, kind) {
        ("apps", "Deployment") => workloads::deployment(object),
        ("apps", "StatefulSet") => workloads::stateful_set(object),
        ("apps", "DaemonSet") => workloads::daemon_set(object),
        ("apps", "ReplicaSet") => workloads::replica_set(object),
        ("batch", "Job") => workloads::job(object),
        ("batch", "CronJob") => workloads::cron_job(object),
        ("", "Pod") => pod::pod(object),
        ("", "PersistentVolumeClaim") => services::pvc(object),
        ("", "PersistentVolume") => services::pv(object),
        ("", "Service") => services::service(object),
        ("networking.k8s.io", "Ingress") => services::ingress(object),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaler::hpa(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => api::crd(object),
        ("apiregistration.k8s.io", "APIService") => api::api_service(object),
        ("", "Namespace") => api::namespace(object),
        // Their status counts usage or budgets; the workloads they govern
        // carry the health.
        ("policy", "PodDisruptionBudget") | ("", "ResourceQuota") => Health::healthy(),
        _ => generic::generic(object),
    }
}

fn being_deleted(object: &Value, since: &str) -> Health {
    let finalizers: Vec<&str> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut message = format!("being deleted (since {since})");
    if !finalizers.is_empty() {
        message.push_str(&format!(
            "; waiting for finalizers: {}",
            finalizers.join(", ")
        ));
    }
    Health::progressing(message)
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

    #[test]
    fn stored_words_read_back_as_the_status_they_name() {
        for status in HealthStatus::ALL {
            assert_eq!(HealthStatus::parse(status.as_str()), status);
        }
        assert_eq!(HealthStatus::parse(" degraded "), HealthStatus::Degraded);
        assert_eq!(HealthStatus::parse(""), HealthStatus::Unknown);
        assert_eq!(HealthStatus::parse("on fire"), HealthStatus::Unknown);
    }

    #[test]
    fn anything_being_deleted_is_progressing() {
        let ready_deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"generation": 1, "deletionTimestamp": "2024-05-01T10:00:00Z",
                "finalizers": ["example.com/cleanup"]},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        let h = assess(&ready_deploy);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(
            h.message,
            "being deleted (since 2024-05-01T10:00:00Z); waiting for finalizers: example.com/cleanup"
        );
        // Even a kind with nothing else to judge, and a pod that failed.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"deletionTimestamp": "2024-05-01T10:00:00Z"}});
        assert_eq!(
            assess(&cm).message,
            "being deleted (since 2024-05-01T10:00:00Z)"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"deletionTimestamp": "2024-05-01T10:00:00Z"}, "status": {"phase": "Failed"}});
        assert_eq!(assess(&pod).status, HealthStatus::Progressing);
    }

    #[test]
    fn kinds_whose_status_is_bookkeeping_are_healthy() {
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "status": {"currentHealthy": 1, "desiredHealthy": 1, "disruptionsAllowed": 0}});
        assert_eq!(assess(&pdb).status, HealthStatus::Healthy);
        let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "status": {"hard": {"pods": "10"}, "used": {"pods": "10"}}});
        assert_eq!(assess(&quota).status, HealthStatus::Healthy);
    }

    #[test]
    fn unknown_does_not_hold_a_wave_and_worst_wins() {
        assert!(HealthStatus::Healthy.passes_gate());
        assert!(HealthStatus::Suspended.passes_gate());
        assert!(HealthStatus::Unknown.passes_gate());
        assert!(!HealthStatus::Progressing.passes_gate());
        assert!(!HealthStatus::Missing.passes_gate());
        assert!(!HealthStatus::Degraded.passes_gate());
        assert_eq!(
            worst(&[
                HealthStatus::Healthy,
                HealthStatus::Degraded,
                HealthStatus::Progressing
            ]),
            HealthStatus::Degraded
        );
        assert_eq!(worst(&[]), HealthStatus::Healthy);
    }
}
