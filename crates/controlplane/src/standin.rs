//! A stand-in for the kubelet and the storage provisioner: the control plane
//! has no nodes, so without it Pods stay Pending, rollouts never finish and
//! claims never bind. Every half second it marks each Pod Running and Ready
//! through the status subresource, as a kubelet would, and each Pending
//! PersistentVolumeClaim Bound, as K3s' local-path provisioner would, and
//! reports for each HorizontalPodAutoscaler what the HPA controller reports
//! with K3s' metrics-server behind it (this control plane has no metrics API,
//! so its own HPA controller is switched off).
//!
//! A Pod that runs to completion (one a Job owns, or with restartPolicy Never
//! or OnFailure) is marked Succeeded, its containers terminated with exit
//! code 0, so the Job controller completes its Job.
//!
//! A test can make chosen images fail (ImagePullBackOff for a long-running
//! Pod, as on a real node; exit code 1 and phase Failed for one that runs to
//! completion): list them, one per line, under the key `failing-images` of
//! the ConfigMap `kube-public/relbot-test-standin`, or pass `--failing-image`.
//! kubesim reads the same ConfigMap and matches images by the same rule
//! ([`kubesim::image_fails`]: the reference, or a repository without tag),
//! so a test written against one behaves the same on the other.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The ConfigMap a test writes to choose failing images.
pub const CONFIG_NAMESPACE: &str = kubesim::FAILING_IMAGES_NAMESPACE;
pub const CONFIG_NAME: &str = kubesim::FAILING_IMAGES_CONFIG_MAP;
pub const FAILING_IMAGES_KEY: &str = kubesim::FAILING_IMAGES_KEY;

/// Runs forever; errors (the server restarting, a Pod deleted mid-patch) are
/// retried on the next tick.
pub async fn run(client: Client, failing_images: Vec<String>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let mut failing: BTreeSet<String> = failing_images.iter().cloned().collect();
        failing.extend(configured_failing_images(&client).await);
        let failing: Vec<String> = failing.into_iter().collect();
        let _ = mark_pods(&client, &failing).await;
        let _ = bind_claims(&client).await;
        let _ = report_autoscalers(&client).await;
    }
}

async fn configured_failing_images(client: &Client) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_NAMESPACE);
    let Ok(Some(cm)) = api.get_opt(CONFIG_NAME).await else {
        return Vec::new();
    };
    cm.data
        .and_then(|d| d.get(FAILING_IMAGES_KEY).cloned())
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_backing_off(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("ImagePullBackOff"))
            })
        })
}

/// Whether a kubelet would run `pod` once rather than keep it running.
fn runs_to_completion(pod: &Pod) -> bool {
    let owned_by_job = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && o.api_version == "batch/v1");
    let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    owned_by_job || matches!(restart, Some("Never" | "OnFailure"))
}

/// The status a kubelet would report for `pod`. A long-running Pod: Running
/// and Ready, or, when one of its images is failing, Pending with that
/// container in ImagePullBackOff. A run-to-completion Pod once its
/// containers exited: Succeeded (exit code 0), or Failed (exit code 1) when
/// an image is failing.
fn kubelet_status(pod: &Pod, failing: &[String]) -> Value {
    let finishes = runs_to_completion(pod);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut any_failing = false;
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let fails = kubesim::image_fails(&image, failing);
            any_failing |= fails;
            let state = match (finishes, fails) {
                (true, _) => {
                    let (code, reason) = if fails {
                        (1, "Error")
                    } else {
                        (0, "Completed")
                    };
                    json!({"terminated": {"exitCode": code, "reason": reason,
                        "startedAt": now, "finishedAt": now}})
                }
                (false, true) => json!({"waiting": {"reason": "ImagePullBackOff",
                    "message": format!("Back-off pulling image \"{image}\"")}}),
                (false, false) => json!({"running": {"startedAt": now}}),
            };
            let ready = !finishes && !fails;
            json!({"name": c.name, "image": image, "imageID": "", "ready": ready,
                   "started": ready, "restartCount": 0, "state": state})
        })
        .collect();
    let (phase, ready) = match (finishes, any_failing) {
        (true, true) => ("Failed", "False"),
        (true, false) => ("Succeeded", "False"),
        (false, true) => ("Pending", "False"),
        (false, false) => ("Running", "True"),
    };
    let condition = |t: &str, status: &str| json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    json!({"status": {
        "phase": phase,
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": now,
        "conditions": [condition("PodScheduled", "True"), condition("Initialized", "True"),
                       condition("ContainersReady", ready), condition("Ready", ready)],
        "containerStatuses": containers,
    }})
}

async fn mark_pods(client: &Client, failing: &[String]) -> Result<(), kube::Error> {
    let all: Api<Pod> = Api::all(client.clone());
    for pod in all.list(&ListParams::default()).await? {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let wants_failure = pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
            c.image
                .as_ref()
                .is_some_and(|i| kubesim::image_fails(i, failing))
        });
        let settled = if runs_to_completion(&pod) {
            false
        } else if wants_failure {
            is_backing_off(&pod)
        } else {
            is_ready(&pod)
        };
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Succeeded" | "Failed"))
            || settled
        {
            continue;
        }
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(kubelet_status(&pod, failing)),
        )
        .await?;
    }
    Ok(())
}

async fn bind_claims(client: &Client) -> Result<(), kube::Error> {
    let all: Api<PersistentVolumeClaim> = Api::all(client.clone());
    for pvc in all.list(&ListParams::default()).await? {
        let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Bound") || pvc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(ns), Some(name)) = (
            pvc.metadata.namespace.as_deref(),
            pvc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let capacity = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned());
        let status = json!({"status": {"phase": "Bound",
            "accessModes": pvc.spec.as_ref().and_then(|s| s.access_modes.clone()),
            "capacity": capacity.map(|c| json!({"storage": c}))}});
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    Ok(())
}

/// ScalingActive and AbleToScale, at the minimum replica count, for every
/// autoscaler that has no conditions yet.
async fn report_autoscalers(client: &Client) -> Result<(), kube::Error> {
    let all: Api<HorizontalPodAutoscaler> = Api::all(client.clone());
    for hpa in all.list(&ListParams::default()).await? {
        let reported = hpa
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| !c.is_empty());
        let (Some(ns), Some(name)) = (
            hpa.metadata.namespace.as_deref(),
            hpa.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if reported || hpa.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let replicas = hpa.spec.as_ref().and_then(|s| s.min_replicas).unwrap_or(1);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let condition = |t: &str, reason: &str| {
            let status = if t == "ScalingLimited" {
                "False"
            } else {
                "True"
            };
            json!({"type": t, "status": status, "reason": reason, "lastTransitionTime": now,
                   "message": "reported by the test control plane's metrics stand-in"})
        };
        let status = json!({"status": {
            "currentReplicas": replicas, "desiredReplicas": replicas,
            "observedGeneration": hpa.metadata.generation,
            "conditions": [condition("AbleToScale", "ReadyForNewScale"),
                           condition("ScalingActive", "ValidMetricFound"),
                           condition("ScalingLimited", "DesiredWithinRange")],
        }});
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    Ok(())
}
