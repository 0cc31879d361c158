//! Controllers that roll pods out: Deployments, StatefulSets, DaemonSets,
//! ReplicaSets and Jobs. A rollout is judged as `kubectl rollout status`
//! judges it, once the controller has observed the latest spec.

use serde_json::Value;

use super::read::{condition, condition_is, condition_message, int, str_at, workload_not_observed};
use super::{Health, HealthStatus};

pub(super) fn deployment(d: &Value) -> Health {
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::new(HealthStatus::Suspended, "rollout is paused");
    }
    // Conditions describe the generation the controller last saw; until it
    // sees this one, they may be about a rollout that is no longer wanted.
    if workload_not_observed(d) {
        return Health::progressing("waiting for the rollout to be observed");
    }
    if condition(d, "Progressing")
        .is_some_and(|c| c["reason"].as_str() == Some("ProgressDeadlineExceeded"))
    {
        return Health::degraded(condition_message(d, "Progressing"));
    }
    // The ReplicaSet cannot create pods (quota, admission): waiting will not help.
    if condition_is(d, "ReplicaFailure", "True") {
        return Health::degraded(condition_message(d, "ReplicaFailure"));
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

pub(super) fn stateful_set(s: &Value) -> Health {
    if workload_not_observed(s) {
        return Health::progressing("waiting for the rollout to be observed");
    }
    let want = int(s, "/spec/replicas").unwrap_or(1);
    let ready = int(s, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Health::progressing(format!("{ready} of {want} replicas ready"));
    }
    // OnDelete: pods change only when someone deletes them; nothing to wait for.
    if str_at(s, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Health::healthy();
    }
    let updated = int(s, "/status/updatedReplicas").unwrap_or(want);
    // A partition holds pods below that ordinal on the old revision on
    // purpose (a canary): the rollout is done when the pods at or above it
    // are updated, while the revisions stay different.
    let partition = int(s, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if partition > 0 {
        let expected = (want - partition).max(0);
        if updated < expected {
            return Health::progressing(format!(
                "partitioned rollout: {updated} of {expected} pods from ordinal {partition} up updated"
            ));
        }
        return Health::healthy();
    }
    if let (Some(current), Some(update)) = (
        str_at(s, "/status/currentRevision"),
        str_at(s, "/status/updateRevision"),
    ) && current != update
    {
        return Health::progressing(format!(
            "rolling update in progress: {updated} of {want} replicas updated"
        ));
    }
    if updated < want {
        return Health::progressing(format!("{updated} of {want} replicas updated"));
    }
    Health::healthy()
}

pub(super) fn daemon_set(d: &Value) -> Health {
    if workload_not_observed(d) {
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

pub(super) fn replica_set(r: &Value) -> Health {
    if workload_not_observed(r) {
        return Health::progressing("waiting for the replica set to be observed");
    }
    // Pods cannot be created (quota exceeded, admission denied): a
    // configuration problem, not a rollout still under way.
    if condition_is(r, "ReplicaFailure", "True") {
        return Health::degraded(condition_message(r, "ReplicaFailure"));
    }
    let want = int(r, "/spec/replicas").unwrap_or(1);
    let available = int(r, "/status/availableReplicas").unwrap_or(0);
    if available < want {
        return Health::progressing(format!("{available} of {want} replicas available"));
    }
    Health::healthy()
}

pub(super) fn job(j: &Value) -> Health {
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

/// A CronJob's status only records past runs; each run is a Job judged on
/// its own.
pub(super) fn cron_job(c: &Value) -> Health {
    if c.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return Health::new(HealthStatus::Suspended, "cron job is suspended");
    }
    Health::healthy()
}

#[cfg(test)]
mod tests {
    use super::super::assess;
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
        let unavailable = deploy(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        assert_eq!(assess(&unavailable).status, HealthStatus::Progressing);
        let paused = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"paused": true}, "status": {}});
        assert_eq!(assess(&paused).status, HealthStatus::Suspended);
    }

    #[test]
    fn deployment_past_its_deadline_says_the_reason_once() {
        let stuck = deploy(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        let h = assess(&stuck);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing."
        );
        // The deadline of an older generation says nothing about this one.
        let mut newer = stuck.clone();
        newer["metadata"]["generation"] = json!(3);
        assert_eq!(assess(&newer).status, HealthStatus::Progressing);
    }

    #[test]
    fn deployment_without_observed_generation_is_progressing() {
        let created = deploy(json!({}));
        let h = assess(&created);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert!(h.message.contains("observed"), "{}", h.message);
    }

    #[test]
    fn deployment_whose_replica_set_cannot_create_pods_is_degraded() {
        let quota = deploy(
            json!({"observedGeneration": 2, "replicas": 0, "updatedReplicas": 0,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "pods \"web-1\" is forbidden: exceeded quota: compute"}]}),
        );
        let h = assess(&quota);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "FailedCreate: pods \"web-1\" is forbidden: exceeded quota: compute"
        );
    }

    fn sts(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 1},
            "spec": spec, "status": status})
    }

    #[test]
    fn stateful_set_partitioned_rollout_completes_at_the_partition() {
        let spec = json!({"replicas": 4,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}});
        // Pods 2 and 3 updated, 0 and 1 held back on purpose: done.
        let done = sts(
            spec.clone(),
            json!({"observedGeneration": 1, "replicas": 4, "readyReplicas": 4, "updatedReplicas": 2,
                "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(assess(&done).status, HealthStatus::Healthy);
        // Only pod 3 so far.
        let rolling = sts(
            spec.clone(),
            json!({"observedGeneration": 1, "replicas": 4, "readyReplicas": 4, "updatedReplicas": 1,
                "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        let h = assess(&rolling);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert!(h.message.contains("1 of 2"), "{}", h.message);
        // A partition above the replica count updates nothing: done at once.
        let all_held = sts(
            json!({"replicas": 2, "updateStrategy": {"rollingUpdate": {"partition": 5}}}),
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 0,
                "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(assess(&all_held).status, HealthStatus::Healthy);
        // Partition 0 is a plain rolling update: revisions must meet.
        let plain = sts(
            json!({"replicas": 2, "updateStrategy": {"rollingUpdate": {"partition": 0}}}),
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 1,
                "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(assess(&plain).status, HealthStatus::Progressing);
        // Updated but not ready: still waiting, partition or not.
        let not_ready = sts(
            spec,
            json!({"observedGeneration": 1, "replicas": 4, "readyReplicas": 3, "updatedReplicas": 2,
                "currentRevision": "db-1", "updateRevision": "db-2"}),
        );
        assert_eq!(assess(&not_ready).status, HealthStatus::Progressing);
    }

    #[test]
    fn stateful_set_without_observed_generation_is_progressing() {
        let created = sts(json!({"replicas": 0}), json!({"replicas": 0}));
        assert_eq!(assess(&created).status, HealthStatus::Progressing);
        let seen = sts(
            json!({"replicas": 0}),
            json!({"observedGeneration": 1, "replicas": 0}),
        );
        assert_eq!(assess(&seen).status, HealthStatus::Healthy);
    }

    #[test]
    fn stateful_set_on_delete_is_healthy_once_ready() {
        let on_delete = sts(
            json!({"replicas": 1, "updateStrategy": {"type": "OnDelete"}}),
            json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                "currentRevision": "r-1", "updateRevision": "r-2"}),
        );
        assert_eq!(assess(&on_delete).status, HealthStatus::Healthy);
    }

    #[test]
    fn daemon_set_waits_for_its_controller_and_pods() {
        let ds = |status: Value| {
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
                "spec": {}, "status": status})
        };
        assert_eq!(
            assess(&ds(json!({"desiredNumberScheduled": 0}))).status,
            HealthStatus::Progressing,
            "not observed yet"
        );
        let done = ds(json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 3, "numberAvailable": 3}));
        assert_eq!(assess(&done).status, HealthStatus::Healthy);
        let rolling = ds(json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
            "updatedNumberScheduled": 2, "numberAvailable": 3}));
        assert_eq!(assess(&rolling).status, HealthStatus::Progressing);
    }

    fn rs(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"generation": 1},
            "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn replica_set_that_cannot_create_pods_is_degraded() {
        let quota = rs(json!({"observedGeneration": 1, "replicas": 0,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "pods \"web-abc\" is forbidden: exceeded quota: pods"}]}));
        let h = assess(&quota);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.message.contains("exceeded quota"), "{}", h.message);
        let recovered = rs(json!({"observedGeneration": 1, "availableReplicas": 2,
            "conditions": [{"type": "ReplicaFailure", "status": "False"}]}));
        assert_eq!(assess(&recovered).status, HealthStatus::Healthy);
        let starting = rs(json!({"observedGeneration": 1, "availableReplicas": 1}));
        assert_eq!(assess(&starting).status, HealthStatus::Progressing);
        assert_eq!(
            assess(&rs(json!({}))).status,
            HealthStatus::Progressing,
            "not observed yet"
        );
    }

    #[test]
    fn jobs() {
        let job = |spec: Value, status: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "spec": spec, "status": status});
        let failed = job(
            json!({}),
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]}),
        );
        let h = assess(&failed);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        let complete = job(
            json!({}),
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(assess(&complete).status, HealthStatus::Healthy);
        let suspended = job(json!({"suspend": true}), json!({}));
        assert_eq!(assess(&suspended).status, HealthStatus::Suspended);
        assert_eq!(
            assess(&job(json!({}), json!({"active": 1}))).status,
            HealthStatus::Progressing
        );
        let cron = |suspend: bool| {
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"suspend": suspend},
                "status": {"lastScheduleTime": "2024-01-01T03:00:00Z"}})
        };
        assert_eq!(assess(&cron(false)).status, HealthStatus::Healthy);
        assert_eq!(assess(&cron(true)).status, HealthStatus::Suspended);
    }
}
