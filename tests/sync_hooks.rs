//! Argo CD resource hooks end to end: the emulator in controllers mode by
//! default, a real cluster with RELBOT_TEST_KUBECONFIG (the test control
//! plane's kubelet stand-in finishes Jobs' Pods, failing those whose image
//! is listed in `kube-public/relbot-test-standin`, which kubesim reads too).

#[path = "support/sync.rs"]
mod sync_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubesim::testing::TestCluster;
use relbot::cluster::health::HealthStatus;
use relbot::config::Application;
use relbot::manifest::Manifest;
use relbot::progress::{Progress, ProgressEvent};
use relbot::source::DesiredApplication;
use relbot::sync::apply::sync_application;
use relbot::sync::engine::{PlanTarget, plan_all};
use relbot::sync::hooks::{HookOutcome, HookPhase, HookRun};
use relbot::sync::result::{Effect, RunPhase, SyncResult};
use relbot::sync::settings::{RunSettings, SyncSettings};
use serde_json::{Value, json};
use sync_support::{application, cluster, controllers, manifest_in};

fn app(tc: &TestCluster) -> Application {
    application(tc, "sync: {healthTimeout: 60s}\n")
}

fn manifest(object: Value, line: usize) -> Manifest {
    manifest_in("apps/shop/hooks.yaml", object, line)
}

/// A Job hook that runs once (no retries: a failure is final at once).
fn job(ns: &str, name: &str, image: &str, annotations: Value) -> Manifest {
    manifest(
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": image}]}}}}),
        10,
    )
}

fn deployment(ns: &str) -> Manifest {
    manifest(
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}}),
        30,
    )
}

fn config_map(ns: &str, value: &str) -> Manifest {
    manifest(
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns}, "data": {"value": value}}),
        40,
    )
}

fn settings(tc: &TestCluster, progress: Progress) -> SyncSettings {
    SyncSettings {
        health_timeout: Duration::from_secs(60),
        progress,
        ..sync_support::settings(tc)
    }
}

type Events = Arc<Mutex<Vec<ProgressEvent>>>;

async fn sync(tc: &TestCluster, manifests: &[Manifest]) -> (SyncResult, Events) {
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = Progress::to(Arc::new(move |e: ProgressEvent| {
        sink.lock().unwrap().push(e)
    }));
    let cluster = cluster(tc);
    let index = cluster.discover().await.expect("discovery");
    let result = sync_application(
        &cluster,
        &index,
        &app(tc),
        manifests,
        Some("rev1"),
        &settings(tc, progress),
    )
    .await;
    (result, events)
}

fn hook<'a>(result: &'a SyncResult, phase: HookPhase, name_prefix: &str) -> &'a HookRun {
    result
        .hooks
        .iter()
        .find(|h| h.phase == phase && h.key.name.starts_with(name_prefix))
        .unwrap_or_else(|| panic!("no {phase:?} hook {name_prefix} in {result:#?}"))
}

/// Where in the event list the first event matching `what` is.
fn position(events: &[ProgressEvent], what: &dyn Fn(&ProgressEvent) -> bool) -> usize {
    events
        .iter()
        .position(what)
        .unwrap_or_else(|| panic!("no such event in {events:#?}"))
}

async fn job_uid(tc: &TestCluster, name: &str) -> Option<String> {
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(tc.client(), tc.namespace());
    jobs.get_opt(name)
        .await
        .unwrap()
        .and_then(|j| j.metadata.uid)
}

#[tokio::test]
async fn hooks_run_before_with_and_after_the_waves_and_follow_their_delete_policies() {
    let tc = TestCluster::acquire_with("hooks-order", controllers()).await;
    let ns = tc.namespace().to_string();
    let mut smoke = manifest(
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "smoke-", "namespace": ns,
                "annotations": {"argocd.argoproj.io/hook": "Sync",
                    "argocd.argoproj.io/sync-wave": "1",
                    "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}},
            "spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "registry.example/smoke:1"}]}}),
        50,
    );
    smoke.origin.line = 50;
    let manifests = vec![
        job(
            &ns,
            "migrate",
            "registry.example/migrate:1",
            json!({"argocd.argoproj.io/hook": "PreSync"}),
        ),
        deployment(&ns),
        config_map(&ns, "one"),
        smoke,
        job(
            &ns,
            "notify",
            "registry.example/notify:1",
            json!({"argocd.argoproj.io/hook": "PostSync",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
    ];

    // The dry-run lists the hooks, apart from what it applies.
    let plan = {
        let target = PlanTarget::Live(relbot::cluster::client::ReadOnlyCluster::from_client(
            tc.client(),
            "test-cluster",
        ));
        let desired = [DesiredApplication {
            app: app(&tc),
            manifests: manifests.clone(),
            notes: Vec::new(),
        }];
        let run = RunSettings {
            concurrency: 8,
            status_namespace: ns.clone(),
            progress: Default::default(),
            health_rules: Default::default(),
            wait_for_last_wave: true,
        };
        plan_all(&target, desired.to_vec(), None, &run)
            .await
            .expect("plan")
            .remove(0)
    };
    assert!(plan.problems.is_empty(), "{plan:#?}");
    assert_eq!(
        plan.changes.len(),
        2,
        "only the Deployment and ConfigMap are applied"
    );
    let listed: Vec<String> = plan.hooks.iter().map(|h| h.key.to_string()).collect();
    assert_eq!(
        listed,
        [
            format!("Job.batch {ns}/migrate"),
            format!("Pod {ns}/smoke-"),
            format!("Job.batch {ns}/notify")
        ]
    );
    let text = relbot::sync::plan_report::render_plan(
        &plan,
        relbot::sync::plan_report::Style { color: false },
        false,
    );
    assert!(
        text.contains(&format!("    PreSync           Job.batch {ns}/migrate  apps/shop/hooks.yaml:10  (wave 0; deleted: BeforeHookCreation)")),
        "{text}"
    );

    let (result, events) = sync(&tc, &manifests).await;
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");
    assert_eq!(result.health, HealthStatus::Healthy, "{result:#?}");
    let migrate = hook(&result, HookPhase::PreSync, "migrate");
    assert_eq!(migrate.outcome, HookOutcome::Succeeded);
    assert!(
        !migrate.deleted,
        "BeforeHookCreation keeps it until the next run"
    );
    let smoke = hook(&result, HookPhase::Sync, "smoke-");
    assert_eq!(smoke.outcome, HookOutcome::Succeeded, "{result:#?}");
    assert!(smoke.key.name.len() > "smoke-".len(), "the server named it");
    assert!(smoke.deleted, "HookSucceeded");
    let notify = hook(&result, HookPhase::PostSync, "notify");
    assert_eq!(notify.outcome, HookOutcome::Succeeded);
    assert!(notify.deleted);
    assert!(
        job_uid(&tc, "notify").await.is_none(),
        "deleted after it succeeded"
    );

    // Order: PreSync finished before wave 0 started; the Sync hook of wave 1
    // after wave 0's objects; PostSync after the last health wait.
    let events = events.lock().unwrap().clone();
    let hooks_event = |phase: &'static str, done: bool| move |e: &ProgressEvent| matches!(e, ProgressEvent::Hooks { phase: p, done: d, .. } if p == phase && *d == done);
    let presync_done = position(&events, &hooks_event("PreSync", true));
    let wave0 = position(
        &events,
        &|e| matches!(e, ProgressEvent::Wave { name, .. } if name == "wave 0"),
    );
    let sync_start = position(&events, &hooks_event("Sync", false));
    let wave1 = position(
        &events,
        &|e| matches!(e, ProgressEvent::Wave { name, .. } if name == "wave 1"),
    );
    let postsync_start = position(&events, &hooks_event("PostSync", false));
    let last_apply = events
        .iter()
        .rposition(|e| matches!(e, ProgressEvent::Applied { .. }))
        .expect("objects applied");
    assert!(
        presync_done < wave0 && wave0 < wave1 && wave1 < sync_start,
        "{events:#?}"
    );
    assert!(
        last_apply < postsync_start && sync_start < postsync_start,
        "{events:#?}"
    );

    // Nothing to sync: no hook runs.
    let first_migrate = job_uid(&tc, "migrate").await.expect("migrate kept");
    let (again, _) = sync(&tc, &manifests).await;
    assert!(again.hooks.is_empty(), "{again:#?}");
    assert!(
        again
            .notes
            .iter()
            .any(|n| n == "hooks not run: nothing to sync")
    );

    // A change runs them again: BeforeHookCreation replaces the old Job.
    let mut changed = manifests.clone();
    changed[2] = config_map(&ns, "two");
    let (third, _) = sync(&tc, &changed).await;
    assert_eq!(third.phase, RunPhase::Synced, "{third:#?}");
    let second_migrate = job_uid(&tc, "migrate").await.expect("migrate re-created");
    assert_ne!(
        first_migrate, second_migrate,
        "the previous run's Job was replaced"
    );
    tc.cleanup().await;
}

/// Lists `image` as failing for the emulator and the real control plane's
/// kubelet stand-in alike.
async fn make_failing(tc: &TestCluster, image: &str) {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams};
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), "kube-public");
    let mut images: Vec<String> = api
        .get_opt("relbot-test-standin")
        .await
        .unwrap()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("failing-images").cloned())
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    images.push(image.to_string());
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "relbot-test-standin", "namespace": "kube-public"},
        "data": {"failing-images": images.join("\n")}});
    api.patch(
        "relbot-test-standin",
        &PatchParams::apply("relbot-tests").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("list the failing image");
}

#[tokio::test]
async fn a_failed_presync_hook_writes_nothing_else_and_runs_the_sync_fail_hooks() {
    let tc = TestCluster::acquire_with("hooks-fail", controllers()).await;
    let ns = tc.namespace().to_string();
    let broken = format!("registry.example/{ns}-migrate:1");
    make_failing(&tc, &broken).await;
    let manifests = vec![
        job(
            &ns,
            "migrate",
            &broken,
            json!({"argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
        deployment(&ns),
        config_map(&ns, "one"),
        job(
            &ns,
            "rollback",
            "registry.example/rollback:1",
            json!({"argocd.argoproj.io/hook": "SyncFail",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
        job(
            &ns,
            "notify",
            "registry.example/notify:1",
            json!({"argocd.argoproj.io/hook": "PostSync"}),
        ),
    ];
    let (result, _) = sync(&tc, &manifests).await;
    assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
    assert_eq!(result.exit_code(), 2);
    let errors = result.errors.join("\n");
    assert!(
        errors.contains(&format!("PreSync hook Job.batch {ns}/migrate"))
            && errors.contains("apps/shop/hooks.yaml:10")
            && errors.contains("nothing else was applied"),
        "{errors}"
    );
    assert!(
        result
            .objects
            .iter()
            .all(|o| matches!(o.outcome, Effect::NotAttempted(_))),
        "{result:#?}"
    );
    let migrate = hook(&result, HookPhase::PreSync, "migrate");
    assert!(
        matches!(migrate.outcome, HookOutcome::Failed(_)),
        "{migrate:#?}"
    );
    assert!(
        !migrate.deleted,
        "HookSucceeded keeps a failed hook for inspection"
    );
    let rollback = hook(&result, HookPhase::SyncFail, "rollback");
    assert_eq!(rollback.outcome, HookOutcome::Succeeded, "{result:#?}");
    assert!(rollback.deleted);
    let notify = hook(&result, HookPhase::PostSync, "notify");
    assert!(
        matches!(notify.outcome, HookOutcome::NotRun(_)),
        "{notify:#?}"
    );

    // Nothing else reached the cluster.
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(tc.client(), &ns);
    let config_maps: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), &ns);
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    assert!(config_maps.get_opt("settings").await.unwrap().is_none());
    assert!(job_uid(&tc, "notify").await.is_none());
    assert!(
        job_uid(&tc, "migrate").await.is_some(),
        "the failed hook stays"
    );

    let text = relbot::sync::result::render_result(
        &result,
        relbot::sync::plan_report::Style { color: false },
        false,
    );
    assert!(text.contains("PreSync hook  failed"), "{text}");
    assert!(text.contains("SyncFail hook succeeded"), "{text}");
    tc.cleanup().await;
}

#[tokio::test]
async fn a_hook_the_server_would_refuse_is_a_dry_run_error_and_nothing_is_written() {
    // A retry limit that is not a number: the server refuses the Job.
    assert_hook_refused("hooks-invalid", |job| {
        job["spec"]["backoffLimit"] = json!("none")
    })
    .await;
}

#[tokio::test]
async fn a_hook_with_a_field_the_server_does_not_know_is_refused_not_stripped() {
    let errors = assert_hook_refused("hooks-unknown", |job| {
        job["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = json!("Always")
    })
    .await;
    assert!(errors.contains("imagePullPolcy"), "{errors}");
}

/// Syncs a PreSync hook broken by `break_it` and a ConfigMap: the run fails
/// on the hook's dry-run, naming its file:line, and writes nothing. The
/// run's errors, for more checks.
async fn assert_hook_refused(label: &str, break_it: impl Fn(&mut Value)) -> String {
    let tc = TestCluster::acquire_with(label, controllers()).await;
    let ns = tc.namespace().to_string();
    let mut broken = job(
        &ns,
        "migrate",
        "registry.example/migrate:1",
        json!({"argocd.argoproj.io/hook": "PreSync"}),
    );
    break_it(&mut broken.object);
    let manifests = vec![broken, config_map(&ns, "one")];
    let (result, _) = sync(&tc, &manifests).await;
    assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
    let errors = result.errors.join("\n");
    assert!(
        errors.contains("apps/shop/hooks.yaml:10")
            && errors.contains("the server rejected this PreSync hook"),
        "{errors}"
    );
    assert!(
        job_uid(&tc, "migrate").await.is_none(),
        "no hook was created"
    );
    use k8s_openapi::api::core::v1::ConfigMap;
    let config_maps: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), &ns);
    assert!(config_maps.get_opt("settings").await.unwrap().is_none());
    tc.cleanup().await;
    errors
}

/// A PreSync hook runs before the first stage, which creates the namespaces
/// of the plan: the namespace the hook runs in is created just before it.
#[tokio::test]
async fn a_presync_hook_in_a_namespace_the_sync_creates_runs_there() {
    let tc = TestCluster::acquire_with("hooks-new-ns", controllers()).await;
    let fresh = format!("{}-fresh", tc.namespace());
    let manifests = vec![
        manifest(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}}),
            1,
        ),
        job(
            &fresh,
            "migrate",
            "registry.example/migrate:1",
            json!({"argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
        config_map(&fresh, "one"),
    ];
    let (result, _) = sync(&tc, &manifests).await;
    assert!(result.errors.is_empty(), "{result:#?}");
    assert_eq!(
        hook(&result, HookPhase::PreSync, "migrate").outcome,
        HookOutcome::Succeeded,
        "{result:#?}"
    );
    assert!(
        result.objects.iter().all(|o| o.outcome == Effect::Applied),
        "the namespace once, then the rest: {result:#?}"
    );
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(tc.client());
    namespaces
        .delete(&fresh, &Default::default())
        .await
        .expect("delete the namespace");
    tc.cleanup().await;
}
