//! Pods. A pod that restarts forever (`restartPolicy: Always`) is a server:
//! healthy when ready, degraded when its containers cannot start or keep
//! crashing. A pod with `Never`/`OnFailure` runs to completion: healthy only
//! once it has succeeded.

use serde_json::Value;

use super::read::{condition, condition_is, reason_and_message, str_at};
use super::{Health, HealthStatus};

pub(super) fn pod(p: &Value) -> Health {
    let restarts_forever = str_at(p, "/spec/restartPolicy").unwrap_or("Always") == "Always";
    // Only for servers: a run-to-completion pod that cannot pull its image
    // yet may still run once the image is pushed, and its Job (which relbot
    // judges on its own) decides when to give up.
    if restarts_forever {
        let stuck: Vec<String> = containers(p).filter_map(cannot_run).collect();
        if !stuck.is_empty() {
            return Health::degraded(stuck.join("; "));
        }
    }
    let status_message = || {
        reason_and_message(
            str_at(p, "/status/reason").unwrap_or(""),
            str_at(p, "/status/message").unwrap_or(""),
        )
    };
    match str_at(p, "/status/phase") {
        Some("Succeeded") => Health::healthy(),
        Some("Failed") => {
            let message = Some(status_message())
                .filter(|m| !m.is_empty())
                .or_else(|| containers(p).find_map(|c| exited_badly(c, "/state/terminated")))
                .unwrap_or_else(|| "pod failed".to_string());
            Health::degraded(message)
        }
        Some("Running") if !restarts_forever => Health::progressing(
            "running; a pod with restartPolicy Never or OnFailure is done when it has succeeded",
        ),
        Some("Running") => {
            if condition_is(p, "Ready", "True") {
                return Health::healthy();
            }
            // Not ready because a container exited with an error (now or on
            // its last run): it is crashing, not starting.
            let crashed = containers(p).find_map(|c| {
                exited_badly(c, "/state/terminated")
                    .or_else(|| exited_badly(c, "/lastState/terminated"))
            });
            if let Some(message) = crashed {
                return Health::degraded(message);
            }
            let why = condition(p, "Ready")
                .and_then(|c| c["message"].as_str())
                .filter(|m| !m.is_empty())
                .unwrap_or("pod is not ready");
            Health::progressing(why)
        }
        Some("Pending") => {
            let message = status_message();
            Health::progressing(if message.is_empty() {
                "pod is pending".to_string()
            } else {
                message
            })
        }
        // The node running the pod stopped reporting: nobody can tell.
        Some("Unknown") => Health::new(
            HealthStatus::Unknown,
            "the pod's node stopped reporting its state",
        ),
        _ => Health::progressing("waiting for the pod to be scheduled"),
    }
}

/// Init containers first (they run first), then the app containers.
fn containers(p: &Value) -> impl Iterator<Item = &Value> {
    ["/status/initContainerStatuses", "/status/containerStatuses"]
        .into_iter()
        .filter_map(|pointer| p.pointer(pointer).and_then(Value::as_array))
        .flatten()
}

/// A container waiting for a reason that will not clear by itself:
/// `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
/// `CreateContainerConfigError`, `InvalidImageName`… (`ContainerCreating`
/// and `PodInitializing` are a normal start).
fn cannot_run(c: &Value) -> Option<String> {
    let waiting = c.pointer("/state/waiting")?;
    let reason = waiting["reason"].as_str()?;
    let failing = reason.starts_with("Err")
        || reason.ends_with("Error")
        || reason.ends_with("BackOff")
        || reason == "InvalidImageName";
    failing.then(|| {
        format!(
            "container {}: {}",
            c["name"].as_str().unwrap_or("?"),
            reason_and_message(reason, waiting["message"].as_str().unwrap_or(""))
        )
    })
}

/// `container web exited with code 137 (OOMKilled)` when the termination at
/// `pointer` was a failure.
fn exited_badly(c: &Value, pointer: &str) -> Option<String> {
    let terminated = c.pointer(pointer)?;
    let code = terminated["exitCode"].as_i64().unwrap_or(0);
    let reason = terminated["reason"].as_str().unwrap_or("");
    if code == 0 && reason != "OOMKilled" {
        return None;
    }
    let mut text = format!(
        "container {} exited with code {code}",
        c["name"].as_str().unwrap_or("?")
    );
    // "Error" is what every non-zero exit is called; other reasons say more.
    if !reason.is_empty() && reason != "Error" {
        text.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = terminated["message"]
        .as_str()
        .filter(|m| !m.trim().is_empty())
    {
        text.push_str(": ");
        text.push_str(message.trim());
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::super::assess;
    use super::*;
    use serde_json::json;

    fn pod(restart: Option<&str>, status: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "main", "image": "alpine"}]});
        if let Some(policy) = restart {
            spec["restartPolicy"] = json!(policy);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec,
            "status": status})
    }

    fn not_ready() -> Value {
        json!([{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
            "message": "containers with unready status: [main]"}])
    }

    #[test]
    fn crash_loop_is_degraded() {
        let p = pod(
            Some("Always"),
            json!({"phase": "Running", "conditions": not_ready(), "containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 3,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=main pod=p_ns(uid)"}}}]}),
        );
        let h = assess(&p);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(
            h.message,
            "container main: CrashLoopBackOff: back-off 40s restarting failed container=main pod=p_ns(uid)"
        );
    }

    #[test]
    fn image_pull_failures_are_degraded() {
        for reason in ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"] {
            let p = pod(
                None,
                json!({"phase": "Pending", "containerStatuses": [{
                "name": "main", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason,
                    "message": format!("{reason}: image \"nope:1\" not found")}}}]}),
            );
            let h = assess(&p);
            assert_eq!(h.status, HealthStatus::Degraded, "{reason}");
            // The kubelet's message starts with the reason already: said once.
            assert_eq!(
                h.message,
                format!("container main: {reason}: image \"nope:1\" not found")
            );
        }
    }

    #[test]
    fn crash_looping_init_container_is_degraded() {
        let p = pod(
            None,
            json!({"phase": "Pending", "initContainerStatuses": [{
            "name": "migrate", "ready": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}}],
            "containerStatuses": [{"name": "main", "ready": false,
            "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        let h = assess(&p);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert!(h.message.starts_with("container migrate:"), "{}", h.message);
    }

    #[test]
    fn normal_start_is_progressing() {
        for reason in ["ContainerCreating", "PodInitializing"] {
            let p = pod(
                Some("Always"),
                json!({"phase": "Pending", "containerStatuses": [{
                "name": "main", "ready": false, "state": {"waiting": {"reason": reason}}}]}),
            );
            assert_eq!(assess(&p).status, HealthStatus::Progressing, "{reason}");
        }
        let unscheduled = pod(
            None,
            json!({"phase": "Pending", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}),
        );
        let h = assess(&unscheduled);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(
            h.message,
            "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    #[test]
    fn non_zero_exit_under_restart_always_is_degraded() {
        let p = pod(
            Some("Always"),
            json!({"phase": "Running", "conditions": not_ready(), "containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 2,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
        );
        let h = assess(&p);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(h.message, "container main exited with code 1");
        let oom = pod(
            None,
            json!({"phase": "Running", "conditions": not_ready(), "containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 1,
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            "state": {"running": {}}}]}),
        );
        assert_eq!(
            assess(&oom).message,
            "container main exited with code 137 (OOMKilled)"
        );
    }

    #[test]
    fn running_ready_pod_is_healthy_even_after_restarts() {
        let p = pod(
            Some("Always"),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "main", "ready": true, "restartCount": 1,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "state": {"running": {}}}]}),
        );
        assert_eq!(assess(&p).status, HealthStatus::Healthy);
    }

    #[test]
    fn running_not_ready_without_a_crash_is_progressing() {
        let p = pod(
            Some("Always"),
            json!({"phase": "Running", "conditions": not_ready(), "containerStatuses": [{
            "name": "main", "ready": false, "restartCount": 0, "lastState": {},
            "state": {"running": {}}}]}),
        );
        let h = assess(&p);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(h.message, "containers with unready status: [main]");
    }

    #[test]
    fn run_to_completion_pod_is_progressing_until_it_succeeds() {
        for policy in ["Never", "OnFailure"] {
            let running = pod(
                Some(policy),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
            );
            assert_eq!(
                assess(&running).status,
                HealthStatus::Progressing,
                "{policy}"
            );
            let done = pod(Some(policy), json!({"phase": "Succeeded"}));
            assert_eq!(assess(&done).status, HealthStatus::Healthy, "{policy}");
            // Waiting on an image is not final for such a pod.
            let pulling = pod(
                Some(policy),
                json!({"phase": "Pending", "containerStatuses": [{
                "name": "main", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
            );
            assert_eq!(
                assess(&pulling).status,
                HealthStatus::Progressing,
                "{policy}"
            );
        }
    }

    #[test]
    fn failed_pod_is_degraded_with_the_best_message() {
        let evicted = pod(
            None,
            json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}),
        );
        assert_eq!(
            assess(&evicted).message,
            "Evicted: The node was low on resource: memory."
        );
        let exited = pod(
            Some("Never"),
            json!({"phase": "Failed", "containerStatuses": [{"name": "main",
            "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "bad flag"}}}]}),
        );
        let h = assess(&exited);
        assert_eq!(h.status, HealthStatus::Degraded);
        assert_eq!(h.message, "container main exited with code 2: bad flag");
        assert_eq!(
            assess(&pod(None, json!({"phase": "Failed"}))).message,
            "pod failed"
        );
    }

    #[test]
    fn lost_node_is_unknown() {
        assert_eq!(
            assess(&pod(None, json!({"phase": "Unknown"}))).status,
            HealthStatus::Unknown
        );
    }
}
