//! HorizontalPodAutoscalers. `autoscaling/v2` keeps its conditions in
//! `status.conditions`; `autoscaling/v1` has no such field, so the API server
//! serves the same conditions as JSON in the
//! `autoscaling.alpha.kubernetes.io/conditions` annotation.

use serde_json::Value;

use super::read::{describe, find_condition};
use super::{Health, HealthStatus};

const V1_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

pub(super) fn hpa(h: &Value) -> Health {
    let from_annotation;
    let conditions = match h.pointer("/status/conditions") {
        Some(c) => c,
        None => match h
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(V1_CONDITIONS))
            .and_then(Value::as_str)
        {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(parsed) => {
                    from_annotation = parsed;
                    &from_annotation
                }
                Err(e) => {
                    return Health::new(
                        HealthStatus::Unknown,
                        format!("the {V1_CONDITIONS} annotation is not JSON: {e}"),
                    );
                }
            },
            None => &Value::Null,
        },
    };
    judge(conditions)
}

/// Reasons the HPA controller gives when it cannot do its job: the target or
/// its scale subresource is missing, metrics cannot be read, the selector is
/// wrong. They do not clear without a change.
fn is_failure(reason: &str) -> bool {
    reason.starts_with("Failed") || reason.starts_with("Invalid")
}

fn judge(conditions: &Value) -> Health {
    if conditions.as_array().is_none_or(Vec::is_empty) {
        return Health::progressing("waiting for the autoscaler to report");
    }
    let of = |kind| find_condition(conditions, kind);
    let status_of = |kind| of(kind).and_then(|c| c["status"].as_str());
    let reason_of = |kind| of(kind).and_then(|c| c["reason"].as_str()).unwrap_or("");
    if is_failure(reason_of("ScalingActive")) && status_of("ScalingActive") == Some("False") {
        return Health::degraded(of("ScalingActive").map(describe).unwrap_or_default());
    }
    // FailedGetScale / FailedUpdateScale: the target cannot be scaled at all.
    if is_failure(reason_of("AbleToScale")) {
        return Health::degraded(of("AbleToScale").map(describe).unwrap_or_default());
    }
    // Any other AbleToScale=False is a back-off between two scalings.
    if status_of("AbleToScale") == Some("False") {
        return Health::progressing(of("AbleToScale").map(describe).unwrap_or_default());
    }
    // The autoscaler has read its target (and, when it computed a count,
    // found it within or clamped to the bounds): it is doing its job. A
    // target scaled to zero disables scaling on purpose, which is fine too.
    if status_of("AbleToScale") == Some("True") || status_of("ScalingLimited") == Some("True") {
        return Health::healthy();
    }
    Health::progressing("waiting for the autoscaler to read its target")
}

#[cfg(test)]
mod tests {
    use super::super::assess;
    use super::*;
    use serde_json::json;

    fn v1(conditions: Option<Value>) -> Value {
        let mut h = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"}, "spec": {"maxReplicas": 3},
            "status": {"currentReplicas": 1, "desiredReplicas": 1}});
        if let Some(c) = conditions {
            h["metadata"]["annotations"] = json!({V1_CONDITIONS: c.to_string()});
        }
        h
    }

    fn v2(conditions: Value) -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "spec": {"maxReplicas": 3}, "status": {"conditions": conditions}})
    }

    #[test]
    fn v1_reads_conditions_from_the_annotation() {
        let failing = v1(Some(json!([
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
             "message": "unable to get metrics for resource cpu"}])));
        let h = assess(&failing);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "FailedGetResourceMetric: unable to get metrics for resource cpu"
        );
        let healthy = v1(Some(json!([
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
            {"type": "ScalingLimited", "status": "True", "reason": "TooFewReplicas"}])));
        assert_eq!(assess(&healthy).status, HealthStatus::Healthy);
    }

    #[test]
    fn v1_unable_to_scale_is_progressing() {
        let backoff = v1(Some(json!([
            {"type": "AbleToScale", "status": "False", "reason": "BackoffBoth",
             "message": "the time since the previous scale is still within the back-off window"}])));
        let h = assess(&backoff);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert!(h.message.starts_with("BackoffBoth: "), "{}", h.message);
        assert_eq!(
            assess(&v1(Some(json!([{"type": "AbleToScale", "status": "False",
                "reason": "SucceededGetScale"}]))))
            .status,
            HealthStatus::Progressing
        );
    }

    #[test]
    fn v1_without_conditions_is_progressing() {
        assert_eq!(assess(&v1(None)).status, HealthStatus::Progressing);
        assert_eq!(
            assess(&v1(Some(json!([])))).status,
            HealthStatus::Progressing
        );
        let mut garbled = v1(None);
        garbled["metadata"]["annotations"] = json!({V1_CONDITIONS: "[{"});
        assert_eq!(assess(&garbled).status, HealthStatus::Unknown);
    }

    #[test]
    fn target_that_cannot_be_scaled_is_degraded() {
        let missing = v2(json!([{"type": "AbleToScale", "status": "False",
            "reason": "FailedGetScale", "message": "deployments/scale.apps \"web\" not found"}]));
        assert_eq!(assess(&missing).status, HealthStatus::Degraded);
        let selector = v2(
            json!([{"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {"type": "ScalingActive", "status": "False", "reason": "InvalidSelector"}]),
        );
        assert_eq!(assess(&selector).status, HealthStatus::Degraded);
    }

    #[test]
    fn v2_scaling_disabled_at_zero_replicas_is_healthy() {
        let disabled = v2(json!([
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {"type": "ScalingActive", "status": "False", "reason": "ScalingDisabled",
             "message": "scaling is disabled since the replica count of the target is zero"}]));
        assert_eq!(assess(&disabled).status, HealthStatus::Healthy);
    }

    #[test]
    fn v2_without_a_read_of_its_target_is_progressing() {
        let partial = v2(json!([
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
            {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange"}]));
        assert_eq!(assess(&partial).status, HealthStatus::Progressing);
    }
}
