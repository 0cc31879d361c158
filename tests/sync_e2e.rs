//! The reconciler end to end against a cluster: the emulator by default, a
//! real cluster with RELBOT_TEST_KUBECONFIG. Every test works in its own
//! namespace and uses that namespace as its application name, so tests can
//! share a real cluster.

use std::time::Duration;

use kubesim::testing::TestCluster;
use kubesim::{ControllerOptions, SimOptions};
use relbot::cluster::client::{Cluster, ReadOnlyCluster};
use relbot::cluster::health::HealthStatus;
use relbot::config::Application;
use relbot::manifest::{Manifest, Origin};
use relbot::sync::apply::{SyncSettings, sync_application};
use relbot::sync::engine::{DesiredApplication, PlanTarget, RunSettings, plan_all};
use relbot::sync::plan::{Action, Plan, Reason, Validation};
use relbot::sync::result::{Outcome, RunPhase, SyncResult};
use serde_json::{Value, json};

fn app(tc: &TestCluster, extra: &str) -> Application {
    let yaml = format!("name: {ns}\npath: apps/{ns}\nnamespace: {ns}\n{extra}", ns = tc.namespace());
    serde_saphyr::from_str(&yaml).expect("application YAML")
}

fn manifest(object: Value, line: usize) -> Manifest {
    Manifest { object, origin: Origin { file: "apps/shop/all.yaml".into(), line } }
}

fn config_map(ns: &str, name: &str, value: &str) -> Manifest {
    manifest(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"greeting": value}}),
        1,
    )
}

fn deployment(ns: &str, name: &str, image: &str, replicas: Option<i64>) -> Manifest {
    let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]}}}});
    if let Some(r) = replicas {
        object["spec"]["replicas"] = json!(r);
    }
    manifest(object, 10)
}

fn service(ns: &str, name: &str) -> Manifest {
    manifest(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        30,
    )
}

fn settings(tc: &TestCluster) -> SyncSettings {
    SyncSettings {
        concurrency: 8,
        status_namespace: tc.namespace().to_string(),
        health_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(100),
        record_status: true,
    }
}

fn cluster(tc: &TestCluster) -> Cluster {
    Cluster::from_client(tc.client(), "test-cluster")
}

async fn sync(tc: &TestCluster, app: &Application, manifests: &[Manifest]) -> SyncResult {
    let cluster = cluster(tc);
    let index = cluster.discover().await.expect("discovery");
    sync_application(&cluster, &index, app, manifests, Some("rev1"), &settings(tc)).await
}

async fn plan(tc: &TestCluster, app: &Application, manifests: &[Manifest]) -> (Plan, ReadOnlyCluster) {
    let read_only = ReadOnlyCluster::from_client(tc.client(), "test-cluster");
    let target = PlanTarget::Live(read_only.clone());
    let desired = [DesiredApplication { app: app.clone(), manifests: manifests.to_vec() }];
    let settings = RunSettings { concurrency: 8, status_namespace: tc.namespace().to_string() };
    let mut plans = plan_all(&target, &desired, Some("rev2"), &settings).await.expect("plan");
    (plans.remove(0), read_only)
}

fn outcome<'a>(result: &'a SyncResult, kind: &str, name: &str) -> &'a relbot::sync::result::ObjectOutcome {
    result
        .objects
        .iter()
        .find(|o| o.key.kind == kind && o.key.name == name)
        .unwrap_or_else(|| panic!("no outcome for {kind} {name} in {result:#?}"))
}

fn server_writes(tc: &TestCluster) -> Option<usize> {
    tc.sim().map(|sim| sim.request_log().iter().filter(|r| r.is_write()).count())
}

#[tokio::test]
async fn sync_creates_then_noop_resync_writes_nothing() {
    let tc = TestCluster::acquire("sync-noop").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let desired = vec![config_map(&ns, "settings", "hello"), service(&ns, "web")];

    let first = sync(&tc, &app, &desired).await;
    assert_eq!(first.phase, RunPhase::Synced, "{first:#?}");
    assert_eq!(first.counts().created, 2, "{first:#?}");
    assert_eq!(first.health, HealthStatus::Healthy);

    if let Some(sim) = tc.sim() {
        sim.clear_request_log();
    }
    let second = sync(&tc, &app, &desired).await;
    assert_eq!(second.phase, RunPhase::Synced, "{second:#?}");
    assert_eq!(second.counts().unchanged, 2, "{second:#?}");
    assert_eq!(second.requests.writes, 0, "a no-op re-sync writes nothing: {second:#?}");
    assert_eq!(second.requests.dry_runs, 0, "and needs no dry-run");
    if let Some(writes) = server_writes(&tc) {
        assert_eq!(writes, 0, "the server saw writes: {:#?}", tc.sim().unwrap().request_log());
    }
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_changed_image_is_one_update_with_a_one_line_diff() {
    let tc = TestCluster::acquire("sync-image").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "sync: {healthTimeout: 1s}\n");
    let before = vec![deployment(&ns, "web", "nginx:1.26", Some(2)), service(&ns, "web")];
    let first = sync(&tc, &app, &before).await;
    assert!(first.counts().created == 2, "{first:#?}");

    let after = vec![deployment(&ns, "web", "nginx:1.27", Some(2)), service(&ns, "web")];
    let (plan, _) = plan(&tc, &app, &after).await;
    let updates: Vec<_> = plan.changes.iter().filter(|c| c.action == Action::Update).collect();
    assert_eq!(updates.len(), 1, "{plan:#?}");
    assert_eq!(updates[0].reason, Reason::ChangedInGit);
    assert_eq!(updates[0].validation, Validation::ServerValidated);
    let diff = updates[0].diff.as_deref().expect("a diff");
    assert_eq!(relbot::sync::diff::changed_lines(diff), 2, "one line out, one in:\n{diff}");
    assert!(diff.contains("nginx:1.26") && diff.contains("nginx:1.27"), "{diff}");

    let second = sync(&tc, &app, &after).await;
    assert_eq!(second.counts().updated, 1, "{second:#?}");
    assert_eq!(second.requests.writes, 1 + u64::from(second.requests.writes > 1), "{second:#?}");
    tc.cleanup().await;
}
