//! Kinds relbot has no specific knowledge of (custom resources mostly),
//! judged by the conventions their controllers commonly follow, in order:
//!
//! 1. kstatus: `Stalled=True` → Degraded; `observedGeneration` behind →
//!    Progressing; `Reconciling=True` → Progressing; `Ready` True/False.
//! 2. `status.health.status` as Argo CD's `Application` writes it.
//! 3. `status.phase` words (`Failed`, `Running`, `Succeeded`…), as Argo
//!    Workflows and many operators write them.
//! 4. Nothing to judge (no status, or only bookkeeping in it) → Healthy:
//!    ConfigMaps, RBAC, most "configuration" custom resources.
//!
//! A status none of these reads is Unknown, not Healthy: relbot cannot tell,
//! and says so (a per-kind rule in relbot.yaml's `health:` settles it).

use serde_json::Value;

use super::read::{condition, condition_is, condition_message, not_observed, str_at};
use super::{Health, HealthStatus};

pub(super) fn generic(object: &Value) -> Health {
    if condition_is(object, "Stalled", "True") {
        return Health::degraded(condition_message(object, "Stalled"));
    }
    if not_observed(object) {
        return Health::progressing("waiting for the controller to observe the latest spec");
    }
    if condition_is(object, "Reconciling", "True") {
        return Health::progressing(condition_message(object, "Reconciling"));
    }
    if let Some(ready) = condition(object, "Ready") {
        match ready["status"].as_str() {
            Some("True") => return Health::healthy(),
            Some("False") => return Health::progressing(condition_message(object, "Ready")),
            _ => {}
        }
    }
    if let Some(h) = health_field(object) {
        return h;
    }
    if let Some(h) = phase(object) {
        return h;
    }
    if nothing_to_judge(object) {
        return Health::healthy();
    }
    let kind = object["kind"].as_str().unwrap_or("this kind");
    Health::new(
        HealthStatus::Unknown,
        format!(
            "relbot cannot read the health of a {kind}: its status has no Ready condition, \
             health or phase; add a rule for it under health: in relbot.yaml"
        ),
    )
}

/// `status.health: {status: Degraded, message: …}` (Argo CD Applications,
/// and controllers that copied them).
fn health_field(object: &Value) -> Option<Health> {
    let word = str_at(object, "/status/health/status")?;
    let message = str_at(object, "/status/health/message").unwrap_or("");
    let status = match word {
        "Healthy" => HealthStatus::Healthy,
        "Progressing" => HealthStatus::Progressing,
        "Degraded" => HealthStatus::Degraded,
        "Suspended" => HealthStatus::Suspended,
        "Missing" => HealthStatus::Missing,
        _ => {
            return Some(Health::new(
                HealthStatus::Unknown,
                format!("status.health.status is {word}"),
            ));
        }
    };
    Some(Health::new(status, message))
}

/// `status.phase` words. `Running` is Progressing: for the run-to-completion
/// kinds that use phases most (Workflows, pipelines, jobs) it means "not
/// finished". An operator whose `Running` means "up" needs a rule.
fn phase(object: &Value) -> Option<Health> {
    let word = str_at(object, "/status/phase")?;
    let message = str_at(object, "/status/message").unwrap_or("");
    let status = match word {
        "Succeeded" | "Completed" | "Complete" | "Ready" | "Healthy" | "Active" | "Available"
        | "Bound" | "Established" | "Deployed" => HealthStatus::Healthy,
        "Pending" | "Running" | "Progressing" | "InProgress" | "Creating" | "Provisioning"
        | "Initializing" | "Updating" | "Reconciling" | "Terminating" | "Deleting" => {
            HealthStatus::Progressing
        }
        "Failed" | "Failure" | "Error" | "Errored" | "Degraded" | "Lost" => HealthStatus::Degraded,
        "Suspended" | "Paused" => HealthStatus::Suspended,
        _ => return None,
    };
    let message = if message.is_empty() && status != HealthStatus::Healthy {
        format!("phase {word}")
    } else {
        message.to_string()
    };
    Some(Health::new(status, message))
}

/// No status, or one holding only bookkeeping relbot cannot judge health
/// from: `observedGeneration`, and conditions none of which said anything.
fn nothing_to_judge(object: &Value) -> bool {
    let Some(status) = object.get("status") else {
        return true;
    };
    match status {
        Value::Null => true,
        Value::Object(fields) => fields.iter().all(|(name, value)| {
            name == "observedGeneration"
                || (name == "conditions" && value.as_array().is_none_or(Vec::is_empty))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::assess;
    use super::*;
    use serde_json::json;

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"generation": 1},
            "status": status})
    }

    #[test]
    fn kstatus_conditions() {
        let stalled = widget(
            json!({"conditions": [{"type": "Stalled", "status": "True", "reason": "Broken"}]}),
        );
        assert_eq!(assess(&stalled).status, HealthStatus::Degraded);
        let ready = widget(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(assess(&ready).status, HealthStatus::Healthy);
        let not_ready = widget(json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "DependencyNotReady", "message": "secret db not found"}]}));
        let h = assess(&not_ready);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(h.message, "DependencyNotReady: secret db not found");
        let reconciling =
            widget(json!({"conditions": [{"type": "Reconciling", "status": "True"}]}));
        assert_eq!(assess(&reconciling).status, HealthStatus::Progressing);
        let behind = widget(
            json!({"observedGeneration": 0, "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(assess(&behind).status, HealthStatus::Progressing);
    }

    #[test]
    fn argo_application_health_field_is_read() {
        let app = |status: &str| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "status": {"health": {"status": status, "message": "from Argo"},
                    "sync": {"status": "Synced"}}})
        };
        let h = assess(&app("Degraded"));
        assert_eq!(
            (h.status, h.message.as_str()),
            (HealthStatus::Degraded, "from Argo")
        );
        assert_eq!(assess(&app("Healthy")).status, HealthStatus::Healthy);
        assert_eq!(
            assess(&app("Progressing")).status,
            HealthStatus::Progressing
        );
        assert_eq!(assess(&app("Suspended")).status, HealthStatus::Suspended);
        assert_eq!(assess(&app("Missing")).status, HealthStatus::Missing);
        assert_eq!(assess(&app("Whatever")).status, HealthStatus::Unknown);
    }

    #[test]
    fn workflow_phase_is_read() {
        let wf = |phase: &str| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "status": {"phase": phase, "message": "node step-1 failed"}})
        };
        let failed = assess(&wf("Failed"));
        assert_eq!(failed.status, HealthStatus::Degraded);
        assert_eq!(failed.message, "node step-1 failed");
        assert_eq!(assess(&wf("Error")).status, HealthStatus::Degraded);
        assert_eq!(assess(&wf("Running")).status, HealthStatus::Progressing);
        assert_eq!(assess(&wf("Pending")).status, HealthStatus::Progressing);
        assert_eq!(assess(&wf("Succeeded")).status, HealthStatus::Healthy);
        let no_message = json!({"apiVersion": "example.com/v1", "kind": "Db",
            "status": {"phase": "Provisioning"}});
        assert_eq!(assess(&no_message).message, "phase Provisioning");
    }

    #[test]
    fn healthy_only_without_a_status_to_judge() {
        for status in [
            None,
            Some(json!({})),
            Some(json!({"observedGeneration": 1})),
            Some(json!({"observedGeneration": 1, "conditions": []})),
        ] {
            let mut object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"generation": 1}});
            if let Some(s) = &status {
                object["status"] = s.clone();
            }
            assert_eq!(assess(&object).status, HealthStatus::Healthy, "{status:?}");
        }
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        assert_eq!(assess(&cm).status, HealthStatus::Healthy);
        // A status relbot cannot read is not called Healthy.
        let sealed = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "status": {"conditions": [{"type": "Synced", "status": "False",
                "message": "no key could decrypt secret"}]}});
        let h = assess(&sealed);
        assert_eq!(h.status, HealthStatus::Unknown);
        assert!(
            h.message.contains("SealedSecret") && h.message.contains("health:"),
            "{}",
            h.message
        );
        let odd_phase = widget(json!({"phase": "Frobnicating"}));
        assert_eq!(assess(&odd_phase).status, HealthStatus::Unknown);
    }
}
