//! "Controllers" mode: the status that kube-controller-manager, the
//! scheduler and kubelets would produce, written after a delay so health
//! checks have something to wait for.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Sim;
use crate::api::now;
use crate::ssa::{self, ApplyCtx, Scope};

/// Settings of controllers mode.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// How long after a change its status catches up.
    pub ready_delay: Duration,
    /// Images that never become ready (exact match, or the repository without a tag).
    pub failing_images: Vec<String>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            ready_delay: Duration::from_millis(200),
            failing_images: Vec::new(),
        }
    }
}

const WATCHED: &[&str] = &[
    "apps/deployments",
    "apps/statefulsets",
    "apps/daemonsets",
    "/persistentvolumeclaims",
    "/pods",
    "batch/jobs",
    "/services",
    "networking.k8s.io/ingresses",
    "autoscaling/horizontalpodautoscalers",
];

pub(crate) fn spawn(sim: Arc<Sim>, delay: Duration) {
    let mut rx = sim.store.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                // Events were dropped while this loop fell behind (a busy
                // machine, many tests on one emulator): look at everything
                // again, as an informer relists, so no object is left
                // without the status a controller would have written.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    resync(&sim, delay);
                    continue;
                }
                Err(_) => return,
            };
            if ev.etype == "DELETED" || !WATCHED.contains(&ev.key.as_str()) {
                continue;
            }
            let name = ev.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (key, ns, sim) = (ev.key.clone(), ev.namespace.clone(), sim.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                reconcile(&sim, &key, &ns, &name);
            });
        }
    });
}

/// Reconciles every watched object after `delay`.
fn resync(sim: &Arc<Sim>, delay: Duration) {
    let objects: Vec<(String, String, String)> = {
        let inner = sim.store.lock();
        WATCHED
            .iter()
            .flat_map(|key| {
                inner.all(key).map(move |o| {
                    (
                        key.to_string(),
                        o["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        o["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
            })
            .collect()
    };
    let sim = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for (key, ns, name) in objects {
            reconcile(&sim, &key, &ns, &name);
        }
    });
}

/// Where a test lists failing images on any cluster: the same ConfigMap
/// and key the real control plane's kubelet stand-in reads, so one test
/// works on both (`controlplane`'s `standin.rs`).
pub const FAILING_IMAGES_NAMESPACE: &str = "kube-public";
pub const FAILING_IMAGES_CONFIG_MAP: &str = "relbot-test-standin";
pub const FAILING_IMAGES_KEY: &str = "failing-images";

/// The images listed in that ConfigMap, one per line.
fn configured_failing(inner: &crate::store::Inner) -> Vec<String> {
    inner
        .get(
            "/configmaps",
            FAILING_IMAGES_NAMESPACE,
            FAILING_IMAGES_CONFIG_MAP,
        )
        .and_then(|cm| cm["data"][FAILING_IMAGES_KEY].as_str())
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Whether `image` is one of `failing`: the same reference, or a listed
/// repository without tag or digest (then every tag of it fails).
pub fn image_fails(image: &str, failing: &[String]) -> bool {
    failing.iter().any(|f| {
        image == f || image.starts_with(&format!("{f}:")) || image.starts_with(&format!("{f}@"))
    })
}

fn failing(sim: &Sim, configured: &[String], obj: &Value) -> bool {
    let mut failing = sim
        .failing_images
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    failing.extend_from_slice(configured);
    let spec = if obj["kind"] == "Job" || obj["spec"]["template"].is_object() {
        &obj["spec"]["template"]["spec"]
    } else {
        &obj["spec"]
    };
    ["containers", "initContainers"].iter().any(|l| {
        spec[l]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| image_fails(c["image"].as_str().unwrap_or_default(), &failing))
    })
}

fn cond(t: &str, status: &str, reason: &str, message: &str, time: &str) -> Value {
    json!({"type": t, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": time, "lastUpdateTime": time})
}

fn desired_status(sim: &Sim, configured: &[String], key: &str, obj: &Value) -> Option<Value> {
    let generation = obj["metadata"]["generation"].clone();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let t = now();
    let bad = failing(sim, configured, obj);
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = if bad { 0 } else { replicas };
    Some(match key {
        "apps/deployments" => {
            let mut s = json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": replicas});
            if ready > 0 {
                s["readyReplicas"] = json!(ready);
                s["availableReplicas"] = json!(ready);
            }
            if bad {
                s["unavailableReplicas"] = json!(replicas);
                s["conditions"] = json!([
                    cond(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        &t
                    ),
                    cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{name}\" has timed out progressing."),
                        &t
                    ),
                ]);
            } else {
                s["conditions"] = json!([
                    cond(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        &t
                    ),
                    cond(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{name}\" has successfully progressed."),
                        &t
                    ),
                ]);
            }
            s
        }
        "apps/statefulsets" => {
            let rev = format!(
                "{name}-{}",
                obj["metadata"]["generation"].as_i64().unwrap_or(1)
            );
            let mut s = json!({"observedGeneration": generation, "replicas": replicas,
                "currentReplicas": replicas, "updatedReplicas": replicas,
                "currentRevision": rev, "updateRevision": rev, "collisionCount": 0});
            if ready > 0 {
                s["readyReplicas"] = json!(ready);
                s["availableReplicas"] = json!(ready);
            } else {
                s["availableReplicas"] = json!(0);
            }
            s
        }
        "apps/daemonsets" => {
            let ready = if bad { 0 } else { 1 };
            let mut s = json!({"observedGeneration": generation, "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1, "updatedNumberScheduled": 1, "numberMisscheduled": 0,
                "numberReady": ready});
            if ready > 0 {
                s["numberAvailable"] = json!(1);
            } else {
                s["numberUnavailable"] = json!(1);
            }
            s
        }
        "/persistentvolumeclaims" => {
            let storage = obj["spec"]["resources"]["requests"]["storage"].clone();
            json!({"phase": "Bound", "accessModes": obj["spec"]["accessModes"],
                "capacity": {"storage": storage}})
        }
        "batch/jobs" => {
            let done = &obj["status"]["conditions"];
            if done.is_array() {
                return None;
            }
            let start = obj["metadata"]["creationTimestamp"].clone();
            if bad {
                json!({"startTime": start, "failed": 1, "conditions": [
                    cond("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", &t),
                    cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", &t)]})
            } else {
                let n = obj["spec"]["completions"].as_i64().unwrap_or(1);
                json!({"startTime": start, "completionTime": t, "succeeded": n, "ready": 0,
                    "terminating": 0, "uncountedTerminatedPods": {}, "conditions": [
                    cond("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", &t),
                    cond("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", &t)]})
            }
        }
        "/pods" => pod_status(obj, bad, &t),
        "/services" => {
            if obj["spec"]["type"] != "LoadBalancer" {
                return None;
            }
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}})
        }
        "networking.k8s.io/ingresses" => {
            json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})
        }
        // The HPA controller's first pass: it read the target's scale and
        // its metrics, and the count it computed is within the bounds.
        "autoscaling/horizontalpodautoscalers" => {
            let min = obj["spec"]["minReplicas"].as_i64().unwrap_or(1);
            json!({"currentReplicas": min, "desiredReplicas": min, "conditions": [
                cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", &t),
                cond("ScalingActive", "True", "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)", &t),
                cond("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range", &t)]})
        }
        _ => return None,
    })
}

/// What a kubelet reports: a Pod that runs to completion (restartPolicy
/// Never or OnFailure, as Jobs' Pods) Succeeded with exit code 0, or Failed
/// with exit code 1 when its image is failing; any other Pod Running and
/// Ready, or Pending in ImagePullBackOff. A finished Pod stays finished.
fn pod_status(pod: &Value, bad: bool, t: &str) -> Value {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return pod["status"].clone();
    }
    let runs_to_completion = matches!(
        pod["spec"]["restartPolicy"].as_str(),
        Some("Never" | "OnFailure")
    );
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c["image"].clone();
            let state = match (runs_to_completion, bad) {
                (true, _) => {
                    let code = if bad { 1 } else { 0 };
                    json!({"terminated": {"exitCode": code,
                        "reason": if bad { "Error" } else { "Completed" },
                        "startedAt": t, "finishedAt": t}})
                }
                (false, true) => json!({"waiting": {"reason": "ImagePullBackOff",
                    "message": format!("Back-off pulling image {image}")}}),
                (false, false) => json!({"running": {"startedAt": t}}),
            };
            let ready = !runs_to_completion && !bad;
            json!({"name": c["name"], "image": image, "imageID": "", "ready": ready,
                "started": ready, "restartCount": 0, "state": state})
        })
        .collect();
    let (phase, ready) = match (runs_to_completion, bad) {
        (true, false) => ("Succeeded", "False"),
        (true, true) => ("Failed", "False"),
        (false, true) => ("Pending", "False"),
        (false, false) => ("Running", "True"),
    };
    let condition = |ty: &str, status: &str| json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": t});
    json!({"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": t,
        "conditions": [condition("PodScheduled", "True"), condition("Initialized", "True"),
            condition("ContainersReady", ready), condition("Ready", ready)],
        "containerStatuses": containers})
}

/// Strips timestamps so a status that only differs in time is not rewritten.
fn timeless(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.ends_with("Time") && !k.ends_with("Timestamp"))
                .map(|(k, v)| (k.clone(), timeless(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(timeless).collect()),
        _ => v.clone(),
    }
}

fn reconcile(sim: &Sim, key: &str, ns: &str, name: &str) {
    let mut inner = sim.store.lock();
    let Some(obj) = inner.get(key, ns, name).cloned() else {
        return;
    };
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let configured = configured_failing(&inner);
    let Some(status) = desired_status(sim, &configured, key, &obj) else {
        return;
    };
    if timeless(&status) == timeless(&obj["status"]) {
        return;
    }
    let Some(res) = inner.resources.iter().find(|r| r.key() == key).cloned() else {
        return;
    };
    let mut new = obj.clone();
    new["status"] = status;
    let api_version = res.api_version();
    let t = now();
    let ctx = ApplyCtx {
        manager: "kube-controller-manager",
        api_version: &api_version,
        subresource: Some("status"),
        force: false,
        now: &t,
        schema: res.ssa_schema(),
        scope: Scope::Status,
    };
    ssa::record_update(&obj, &mut new, &ctx);
    inner.put(&res, new, "MODIFIED");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Faults, SimOptions, store::Store};
    use std::sync::Mutex;

    fn sim() -> Arc<Sim> {
        let opts = SimOptions::default();
        let sim = Arc::new(Sim {
            store: Store::new(&opts.service_cidr, opts.watch_history),
            opts,
            faults: Faults::new(),
            log: Mutex::new(Vec::new()),
            failing_images: Mutex::new(Vec::new()),
        });
        crate::bootstrap(&sim);
        sim
    }

    fn put(sim: &Sim, key: &str, obj: Value) {
        let mut inner = sim.store.lock();
        let res = inner
            .resources
            .iter()
            .find(|r| r.key() == key)
            .cloned()
            .unwrap();
        inner.put(&res, obj, "ADDED");
    }

    /// On one thread the loop cannot run while a burst of writes fills the
    /// event channel, so it finds itself behind: the Deployment's event is
    /// gone, and only relisting gives it a status.
    #[tokio::test(flavor = "current_thread")]
    async fn a_controller_that_fell_behind_relists_and_misses_no_object() {
        let sim = sim();
        spawn(sim.clone(), Duration::ZERO);
        put(
            &sim,
            "apps/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "generation": 1},
                "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}),
        );
        for i in 0..5000 {
            put(
                &sim,
                "/configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("c{i}"), "namespace": "default"}}),
            );
        }
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let ready = sim
                .store
                .lock()
                .get("apps/deployments", "default", "web")
                .is_some_and(|d| d["status"]["readyReplicas"] == 1);
            if ready {
                return;
            }
        }
        panic!("the Deployment missed in the burst never got a status");
    }
}
