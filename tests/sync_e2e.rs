//! The reconciler end to end against a cluster: the emulator by default, a
//! real cluster with RELBOT_TEST_KUBECONFIG. Every test works in its own
//! namespace and uses that namespace as its application name, so tests can
//! share a real cluster.

#[path = "support/sync.rs"]
mod sync_support;

use std::time::Duration;

use kubesim::testing::TestCluster;
use relbot::cluster::client::ReadOnlyCluster;
use relbot::cluster::health::HealthStatus;
use relbot::config::Application;
use relbot::manifest::Manifest;
use relbot::source::DesiredApplication;
use relbot::sync::apply::sync_application;
use relbot::sync::engine::{PlanTarget, plan_all};
use relbot::sync::plan::{Action, Plan, Reason, Validation};
use relbot::sync::result::{Effect, RunPhase, SyncResult};
use relbot::sync::settings::{RunSettings, SyncSettings};
use serde_json::{Value, json};
use sync_support::{
    application as app, cluster, controllers, delete_crd, manifest, settings, strict_widget_crd,
    widget,
};

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

async fn sync(tc: &TestCluster, app: &Application, manifests: &[Manifest]) -> SyncResult {
    let cluster = cluster(tc);
    let index = cluster.discover().await.expect("discovery");
    sync_application(
        &cluster,
        &index,
        app,
        manifests,
        Some("rev1"),
        &settings(tc),
    )
    .await
}

async fn plan(
    tc: &TestCluster,
    app: &Application,
    manifests: &[Manifest],
) -> (Plan, ReadOnlyCluster) {
    let read_only = ReadOnlyCluster::from_client(tc.client(), "test-cluster");
    let target = PlanTarget::Live(read_only.clone());
    let desired = [DesiredApplication {
        app: app.clone(),
        manifests: manifests.to_vec(),
        notes: Vec::new(),
    }];
    let settings = RunSettings {
        concurrency: 8,
        status_namespace: tc.namespace().to_string(),
        progress: Default::default(),
        health_rules: Default::default(),
        wait_for_last_wave: true,
    };
    let mut plans = plan_all(&target, desired.to_vec(), Some("rev2"), &settings)
        .await
        .expect("plan");
    (plans.remove(0), read_only)
}

fn outcome<'a>(
    result: &'a SyncResult,
    kind: &str,
    name: &str,
) -> &'a relbot::sync::result::ObjectOutcome {
    result
        .objects
        .iter()
        .find(|o| o.key.kind == kind && o.key.name == name)
        .unwrap_or_else(|| panic!("no outcome for {kind} {name} in {result:#?}"))
}

fn server_writes(tc: &TestCluster) -> Option<usize> {
    tc.sim()
        .map(|sim| sim.request_log().iter().filter(|r| r.is_write()).count())
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
    assert_eq!(
        second.requests.writes, 0,
        "a no-op re-sync writes nothing: {second:#?}"
    );
    assert_eq!(second.requests.dry_runs, 0, "and needs no dry-run");
    if let Some(writes) = server_writes(&tc) {
        assert_eq!(
            writes,
            0,
            "the server saw writes: {:#?}",
            tc.sim().unwrap().request_log()
        );
    }
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_changed_image_is_one_update_with_a_one_line_diff() {
    let tc = TestCluster::acquire_with("sync-image", controllers()).await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "sync: {healthTimeout: 1s}\n");
    let before = vec![
        deployment(&ns, "web", "nginx:1.26", Some(2)),
        service(&ns, "web"),
    ];
    let first = sync(&tc, &app, &before).await;
    assert!(first.counts().created == 2, "{first:#?}");

    let after = vec![
        deployment(&ns, "web", "nginx:1.27", Some(2)),
        service(&ns, "web"),
    ];
    let (plan, _) = plan(&tc, &app, &after).await;
    let updates: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Update)
        .collect();
    assert_eq!(updates.len(), 1, "{plan:#?}");
    assert_eq!(updates[0].reason, Reason::ChangedInGit);
    assert_eq!(updates[0].validation, Validation::ServerValidated);
    let diff = updates[0].diff.as_deref().expect("a diff");
    assert_eq!(
        relbot::sync::diff::changed_lines(diff),
        2,
        "one line out, one in:\n{diff}"
    );
    assert!(
        diff.contains("nginx:1.26") && diff.contains("nginx:1.27"),
        "{diff}"
    );

    let second = sync(&tc, &app, &after).await;
    assert_eq!(second.counts().updated, 1, "{second:#?}");
    assert_eq!(
        second.requests.writes,
        1 + u64::from(second.status_recorded),
        "one apply: {second:#?}"
    );
    tc.cleanup().await;
}

/// Another writer changes a field relbot owns, the way `kubectl edit` does
/// (an Update: ownership moves to that manager).
async fn edit_config_map(tc: &TestCluster, name: &str, value: &str) {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let patch = json!({"data": {"greeting": value}});
    api.patch(
        name,
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .expect("manual edit");
}

async fn live_greeting(tc: &TestCluster, name: &str) -> String {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), tc.namespace());
    api.get(name)
        .await
        .expect("config map")
        .data
        .unwrap_or_default()["greeting"]
        .clone()
}

#[tokio::test]
async fn sync_reverts_drift_and_only_reports_it_with_self_heal_off() {
    let tc = TestCluster::acquire("sync-drift").await;
    let ns = tc.namespace().to_string();
    let healing = app(&tc, "");
    let desired = vec![config_map(&ns, "settings", "hello")];
    sync(&tc, &healing, &desired).await;

    edit_config_map(&tc, "settings", "edited by hand").await;
    let (plan, _) = plan(&tc, &healing, &desired).await;
    let change = &plan.changes[0];
    assert_eq!(
        (change.action, change.reason),
        (Action::Update, Reason::Drift),
        "{plan:#?}"
    );
    let diff = change.diff.as_deref().expect("drift diff");
    assert!(
        diff.contains("edited by hand") && diff.contains("hello"),
        "{diff}"
    );

    let reporting = app(&tc, "sync: {selfHeal: false}\n");
    let reported = sync(&tc, &reporting, &desired).await;
    assert_eq!(reported.phase, RunPhase::OutOfSync, "{reported:#?}");
    assert!(matches!(
        outcome(&reported, "ConfigMap", "settings").outcome,
        Effect::Held(_)
    ));
    assert_eq!(
        reported.requests.writes,
        u64::from(reported.status_recorded),
        "only the status record: {reported:#?}"
    );
    assert_eq!(live_greeting(&tc, "settings").await, "edited by hand");

    let healed = sync(&tc, &healing, &desired).await;
    assert_eq!(healed.phase, RunPhase::Synced, "{healed:#?}");
    assert_eq!(healed.counts().updated, 1);
    assert_eq!(live_greeting(&tc, "settings").await, "hello");
    let again = sync(&tc, &healing, &desired).await;
    assert_eq!(again.requests.writes, 0, "converged: {again:#?}");
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_prunes_a_removed_file_and_nothing_else() {
    let tc = TestCluster::acquire("sync-prune").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let all = vec![
        config_map(&ns, "keep", "a"),
        config_map(&ns, "gone", "b"),
        service(&ns, "web"),
    ];
    sync(&tc, &app, &all).await;
    // Someone else's object in the same namespace, with a copied label.
    {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Api, PostParams};
        let api: Api<ConfigMap> = Api::namespaced(tc.client(), &ns);
        let foreign: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "foreign",
            "labels": {"app.kubernetes.io/managed-by": "relbot", "relbot.dev/application": ns}}}))
        .unwrap();
        api.create(&PostParams::default(), &foreign).await.unwrap();
    }
    let fewer = vec![config_map(&ns, "keep", "a"), service(&ns, "web")];
    let (plan, _) = plan(&tc, &app, &fewer).await;
    let prunes: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Prune)
        .map(|c| c.key.name.clone())
        .collect();
    assert_eq!(prunes, ["gone"], "{plan:#?}");

    let result = sync(&tc, &app, &fewer).await;
    assert_eq!(result.counts().pruned, 1, "{result:#?}");
    assert_eq!(result.counts().unchanged, 2, "{result:#?}");
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), &ns);
    assert!(api.get_opt("gone").await.unwrap().is_none());
    assert!(api.get_opt("keep").await.unwrap().is_some());
    assert!(
        api.get_opt("foreign").await.unwrap().is_some(),
        "an untracked copy is never pruned"
    );
    tc.cleanup().await;
}

/// Two relbots on one cluster (each with its own status namespace) with an
/// application of the same name: their label-selected lists return each
/// other's objects, and neither prunes nor takes them.
#[tokio::test]
async fn a_second_relbot_with_the_same_application_name_leaves_the_first_ones_objects_alone() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let tc = TestCluster::acquire("sync-two-relbots").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    sync(&tc, &app, &[config_map(&ns, "first", "a")]).await;

    let cluster = cluster(&tc);
    let index = cluster.discover().await.expect("discovery");
    let mut second = settings(&tc);
    second.status_namespace = format!("{ns}-second");
    second.record_status = false;
    let mine = [config_map(&ns, "second", "b")];
    let result = sync_application(&cluster, &index, &app, &mine, Some("rev1"), &second).await;
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");
    assert!(
        result.objects.iter().all(|o| o.action != Action::Prune),
        "the first relbot's object is not the second's to prune: {result:#?}"
    );
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), &ns);
    assert!(api.get_opt("first").await.unwrap().is_some());
    assert!(api.get_opt("second").await.unwrap().is_some());

    // Declaring the first relbot's object is refused, and nothing is written.
    let taken = [config_map(&ns, "first", "taken")];
    let result = sync_application(&cluster, &index, &app, &taken, Some("rev2"), &second).await;
    assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
    assert!(
        result
            .errors
            .iter()
            .any(|e| e.contains("already managed by another relbot")
                && e.contains(&format!("namespace \"{ns}\""))),
        "{:?}",
        result.errors
    );
    let first = api.get("first").await.unwrap();
    assert_eq!(first.data.unwrap()["greeting"], "a");
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_refuses_a_prune_of_most_of_the_application() {
    let tc = TestCluster::acquire("sync-prune-guard").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let all: Vec<Manifest> = (0..4)
        .map(|i| config_map(&ns, &format!("cm{i}"), "x"))
        .collect();
    sync(&tc, &app, &all).await;
    let result = sync(&tc, &app, &all[..1]).await;
    assert_eq!(result.counts().pruned, 0, "{result:#?}");
    assert_eq!(result.counts().held, 3);
    assert!(
        result
            .notes
            .iter()
            .any(|n| n.contains("prune refused") && n.contains("maxPrunePercent")),
        "{result:#?}"
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_never_shows_hpa_owned_replicas_as_drift() {
    let tc = TestCluster::acquire_with("sync-hpa", controllers()).await;
    let ns = tc.namespace().to_string();
    // git sets replicas, but the application hands them to the autoscaler.
    let app = app(
        &tc,
        "sync: {healthTimeout: 20s}\nignore: [{kind: Deployment, jsonPointers: [/spec/replicas]}]\n",
    );
    let desired = vec![deployment(&ns, "web", "nginx:1.27", Some(2))];
    sync(&tc, &app, &desired).await;
    {
        use k8s_openapi::api::apps::v1::Deployment;
        use kube::api::{Api, Patch, PatchParams};
        let api: Api<Deployment> = Api::namespaced(tc.client(), &ns);
        let scale = json!({"spec": {"replicas": 5}});
        let params = PatchParams {
            field_manager: Some("horizontal-pod-autoscaler".into()),
            ..Default::default()
        };
        api.patch_scale("web", &params, &Patch::Merge(&scale))
            .await
            .expect("scale");
    }
    let (plan, _) = plan(&tc, &app, &desired).await;
    assert_eq!(plan.changes[0].action, Action::Unchanged, "{plan:#?}");
    let again = sync(&tc, &app, &desired).await;
    // (The status ConfigMap may be rewritten: health changes while the scaled Deployment rolls.)
    assert_eq!(
        outcome(&again, "Deployment", "web").outcome,
        Effect::Unchanged,
        "{again:#?}"
    );
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(tc.client(), &ns);
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(5)
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_applies_a_crd_and_its_custom_resource_in_one_commit() {
    let tc = TestCluster::acquire("sync-crd").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    let app = app(&tc, "");
    let crd = manifest(strict_widget_crd(&group), 1);
    let widget = manifest(widget(&group, &ns, json!({"size": 3})), 20);
    let desired = vec![widget, crd];
    let (plan, _) = plan(&tc, &app, &desired).await;
    assert!(plan.problems.is_empty(), "{plan:#?}");
    let cr = plan
        .changes
        .iter()
        .find(|c| c.key.kind == "Widget")
        .unwrap();
    assert_eq!(
        (cr.action, cr.validation),
        (Action::Create, Validation::SchemaChecked)
    );
    assert_eq!(
        plan.changes[0].key.kind, "CustomResourceDefinition",
        "CRDs go first"
    );

    let result = sync(&tc, &app, &desired).await;
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");
    assert_eq!(result.counts().created, 2);
    let again = sync(&tc, &app, &desired).await;
    assert_eq!(again.requests.writes, 0, "{again:#?}");

    // Leave no cluster-scoped CRD behind on a real cluster.
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_unknown_kind_is_an_error_naming_file_and_line() {
    let tc = TestCluster::acquire("sync-unknown").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let gadget = manifest(
        json!({"apiVersion": "nowhere.example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": ns}}),
        42,
    );
    let (plan, _) = plan(&tc, &app, &[config_map(&ns, "c", "x"), gadget.clone()]).await;
    let problem = plan.problems.first().expect("a problem").to_string();
    assert!(
        problem.contains("apps/shop/all.yaml:42") && problem.contains("Gadget"),
        "{problem}"
    );
    let result = sync(&tc, &app, &[config_map(&ns, "c", "x"), gadget]).await;
    assert_eq!(result.phase, RunPhase::Failed);
    assert!(
        result
            .objects
            .iter()
            .all(|o| matches!(o.outcome, Effect::NotAttempted(_))),
        "nothing applied from a plan with errors: {result:#?}"
    );
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), &ns);
    assert!(api.get_opt("c").await.unwrap().is_none());
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_failing_image_is_degraded_and_the_gate_stops_later_waves() {
    let tc = TestCluster::acquire_with("sync-degraded", controllers()).await;
    let Some(sim) = tc.require_emulator("controllers with failing images") else {
        return;
    };
    sim.set_failing_images(["registry.example/broken:1"]);
    let ns = tc.namespace().to_string();
    let app = app(&tc, "sync: {healthTimeout: 30s}\n");
    let mut later = config_map(&ns, "after", "x");
    later.object["metadata"]["annotations"] = json!({"relbot.dev/sync-wave": "1"});
    let desired = vec![
        deployment(&ns, "broken", "registry.example/broken:1", Some(1)),
        later,
    ];
    let result = sync(&tc, &app, &desired).await;
    assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
    assert_eq!(result.health, HealthStatus::Degraded);
    let broken = outcome(&result, "Deployment", "broken");
    assert_eq!(broken.outcome, Effect::Applied);
    assert_eq!(
        broken.health.as_ref().unwrap().status,
        HealthStatus::Degraded
    );
    assert!(
        matches!(
            outcome(&result, "ConfigMap", "after").outcome,
            Effect::NotAttempted(_)
        ),
        "{result:#?}"
    );
    assert!(
        result.errors.iter().any(|e| e.contains("Degraded")),
        "{:?}",
        result.errors
    );
    assert_eq!(result.exit_code(), 2);
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_immutable_change_is_recreate_and_applied_only_with_the_annotation() {
    let tc = TestCluster::acquire_with("sync-recreate", controllers()).await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "sync: {healthTimeout: 20s}\n");
    let original = deployment(&ns, "web", "nginx:1.27", Some(1));
    sync(
        &tc,
        &app,
        &[original.clone(), config_map(&ns, "settings", "hello")],
    )
    .await;

    let mut moved = original.clone();
    moved.object["spec"]["selector"]["matchLabels"]["app"] = json!("web2");
    moved.object["spec"]["template"]["metadata"]["labels"]["app"] = json!("web2");
    let both = [moved.clone(), config_map(&ns, "settings", "changed")];
    let (plan, _) = plan(&tc, &app, &both).await;
    let web = plan
        .changes
        .iter()
        .find(|c| c.key.kind == "Deployment")
        .expect("the Deployment's change");
    assert_eq!(web.action, Action::Recreate, "{plan:#?}");
    assert!(
        plan.problems.iter().any(
            |p| p.to_string().contains("Replace=true") && p.to_string().contains("all.yaml:10")
        ),
        "{:#?}",
        plan.problems
    );
    // A rejection like any other: nothing of the stage is written.
    let refused = sync(&tc, &app, &both).await;
    assert_eq!(refused.exit_code(), 2, "{refused:#?}");
    assert!(
        refused.errors.iter().any(|e| e.contains("Replace=true")),
        "{refused:#?}"
    );
    assert!(
        matches!(
            outcome(&refused, "ConfigMap", "settings").outcome,
            Effect::NotAttempted(_)
        ),
        "{refused:#?}"
    );
    assert_eq!(live_greeting(&tc, "settings").await, "hello");

    moved.object["metadata"]["annotations"] = json!({"relbot.dev/sync-options": "Replace=true"});
    let recreated = sync(&tc, &app, std::slice::from_ref(&moved)).await;
    assert_eq!(
        outcome(&recreated, "Deployment", "web").outcome,
        Effect::Applied,
        "{recreated:#?}"
    );
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(tc.client(), &ns);
    let live = api.get("web").await.unwrap();
    assert_eq!(
        live.spec.unwrap().selector.match_labels.unwrap()["app"],
        "web2"
    );
    tc.cleanup().await;
}

/// A StatefulSet's claim templates, a RoleBinding's roleRef and a Job's
/// template: each refused in place in the server's own words, none of
/// which says "field is immutable" for the first two.
#[tokio::test]
async fn every_change_the_server_refuses_in_place_stops_the_sync_until_replace_is_allowed() {
    let tc = TestCluster::acquire("sync-in-place").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let stateful_set = |storage: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}]}})
    };
    let role_binding = |role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]})
    };
    let job = |word: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "m", "image": "busybox:1.36", "command": ["echo", word]}]}}}})
    };
    let first = [
        manifest(stateful_set("1Gi"), 1),
        manifest(role_binding("first"), 20),
        manifest(job("one"), 30),
    ];
    // Written, not waited for: no node runs the StatefulSet's pods.
    let cluster = cluster(&tc);
    let index = cluster.discover().await.expect("discovery");
    let no_wait = SyncSettings {
        wait_for_last_wave: false,
        ..settings(&tc)
    };
    let sync = |desired: Vec<Manifest>| {
        let (cluster, index, app, no_wait) = (&cluster, &index, &app, &no_wait);
        async move { sync_application(cluster, index, app, &desired, Some("rev1"), no_wait).await }
    };
    let created = sync(first.to_vec()).await;
    assert!(created.errors.is_empty(), "{created:#?}");

    let mut changed = vec![
        manifest(stateful_set("2Gi"), 1),
        manifest(role_binding("second"), 20),
        manifest(job("two"), 30),
    ];
    let (plan, _) = plan(&tc, &app, &changed).await;
    assert_eq!(plan.problems.len(), 3, "{:#?}", plan.problems);
    for change in &plan.changes {
        assert_eq!(change.action, Action::Recreate, "{change:#?}");
    }
    for problem in &plan.problems {
        let said = problem.to_string();
        assert!(said.contains("Replace=true"), "{said}");
        // The server's verdict, without its Go dump of the new value.
        assert!(
            !said.contains("core.") && !said.contains("rbac.RoleRef{"),
            "{said}"
        );
    }

    let live = |kind: &str, name: &str| {
        let ar = if kind == "StatefulSet" {
            kube::discovery::ApiResource::erase::<k8s_openapi::api::apps::v1::StatefulSet>(&())
        } else {
            kube::discovery::ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&())
        };
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(tc.client(), &ns, &ar);
        let name = name.to_string();
        async move { serde_json::to_value(api.get(&name).await.expect("live")).unwrap() }
    };
    // The StatefulSet's pod, as its controller makes it (a real cluster's
    // controller may have made it already).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(tc.client(), &ns);
    let sts_uid = live("StatefulSet", "db").await["metadata"]["uid"].clone();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "labels": {"app": "db"}, "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "StatefulSet", "name": "db", "uid": sts_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}});
    let _ = pods
        .create(&Default::default(), &serde_json::from_value(pod).unwrap())
        .await;
    let pod_uid = pods.get("db-0").await.expect("pod").metadata.uid;

    for manifest in &mut changed[..2] {
        manifest.object["metadata"]["annotations"] =
            json!({"relbot.dev/sync-options": "Replace=true"});
    }
    let replaced = sync(changed[..2].to_vec()).await;
    assert!(replaced.errors.is_empty(), "{replaced:#?}");
    assert_eq!(
        live("StatefulSet", "db").await["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
            ["storage"],
        "2Gi"
    );
    assert_eq!(
        live("RoleBinding", "reader").await["roleRef"]["name"],
        "second"
    );
    // Re-created without taking its pod along: the database kept running.
    // (A background delete would have the garbage collector remove it.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = pods
        .get("db-0")
        .await
        .expect("the pod outlived its StatefulSet");
    assert_eq!(kept.metadata.uid, pod_uid);
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_converges_after_server_faults_mid_sync() {
    let tc = TestCluster::acquire("sync-faults").await;
    let Some(sim) = tc.require_emulator("fault injection") else {
        return;
    };
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let desired: Vec<Manifest> = (0..12)
        .map(|i| config_map(&ns, &format!("cm{i}"), "x"))
        .collect();
    let cluster = cluster(&tc);
    let index = cluster.discover().await.unwrap();
    // Let the plan's reads through, then fail a burst of applies with 500s and 429s.
    sim.faults().stall_next(Duration::from_millis(1));
    let first = {
        let fault_after_plan = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        fault_after_plan.await;
        sim.faults().fail_next(6, 500, None);
        sim.faults().fail_next(4, 429, Some(Duration::from_secs(1)));
        sync_application(
            &cluster,
            &index,
            &app,
            &desired,
            Some("rev1"),
            &settings(&tc),
        )
        .await
    };
    sim.faults().clear();
    let second = sync(&tc, &app, &desired).await;
    assert_eq!(
        second.phase,
        RunPhase::Synced,
        "first: {first:#?}\nsecond: {second:#?}"
    );
    let third = sync(&tc, &app, &desired).await;
    assert_eq!(third.requests.writes, 0, "converged: {third:#?}");
    assert_eq!(third.counts().unchanged, 12);
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_dry_run_issues_zero_writes_at_the_server() {
    let tc = TestCluster::acquire("sync-dry-run").await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "sync: {createNamespace: true}\n");
    sync(&tc, &app, &[config_map(&ns, "old", "x")]).await;
    if let Some(sim) = tc.sim() {
        sim.clear_request_log();
    }
    let desired = vec![
        config_map(&ns, "new", "y"),
        config_map(&ns, "old", "changed"),
    ];
    let (plan, read_only) = plan(&tc, &app, &desired).await;
    assert!(plan.has_differences());
    assert_eq!(read_only.counts().writes, 0);
    assert!(read_only.counts().dry_runs >= 2, "{:?}", read_only.counts());
    if let Some(sim) = tc.sim() {
        let log = sim.request_log();
        assert_eq!(log.iter().filter(|r| r.is_write()).count(), 0, "{log:#?}");
        assert!(log.iter().any(|r| r.dry_run), "dry-runs reached the server");
    }
    tc.cleanup().await;
}

/// The CRDs K3s ships that the samples use (Traefik middlewares, the Helm
/// controller's charts), installed the way a K3s cluster already has them.
async fn install_k3s_crds(tc: &TestCluster) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<CustomResourceDefinition> = Api::all(tc.client());
    for (group, kind, plural) in [
        ("traefik.io", "Middleware", "middlewares"),
        ("helm.cattle.io", "HelmChart", "helmcharts"),
    ] {
        let name = format!("{plural}.{group}");
        if api.get_opt(&name).await.expect("read CRDs").is_some() {
            continue; // a real K3s cluster has them
        }
        let version = if group == "traefik.io" {
            "v1alpha1"
        } else {
            "v1"
        };
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
                "versions": [{"name": version, "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        api.patch(
            &name,
            &PatchParams::apply("k3s").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("install CRD");
    }
    for _ in 0..50 {
        let ready = relbot::cluster::client::ReadOnlyCluster::from_client(tc.client(), "t")
            .discover()
            .await
            .is_ok_and(|index| index.resolve("helm.cattle.io", "v1", "HelmChart").is_some());
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The repository's samples, moved into the test's namespace.
fn samples_in(tc: &TestCluster) -> Vec<(Application, Vec<Manifest>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests-sample");
    let loaded = relbot::config::load(&root.join("relbot.yaml")).expect("sample config");
    let desired = relbot::source::load_desired(&root, &loaded.config).expect("samples render");
    let ns = tc.namespace();
    desired
        .into_iter()
        .map(|d| {
            let mut app = d.app;
            app.name = format!("{}-{}", app.name, &ns[ns.len() - 5..]);
            app.namespace = Some(ns.to_string());
            let manifests = d
                .manifests
                .into_iter()
                .map(|mut m| {
                    let is_namespace = m.object["kind"] == "Namespace";
                    let metadata = m.object["metadata"].as_object_mut().unwrap();
                    if is_namespace {
                        metadata.insert("name".into(), json!(ns));
                    } else if metadata.contains_key("namespace") {
                        metadata.insert("namespace".into(), json!(ns));
                    }
                    m
                })
                .collect();
            (app, manifests)
        })
        .collect()
}

fn without_prestop_sleep(manifests: &mut [Manifest]) {
    for m in manifests {
        for c in m
            .object
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
                lifecycle.remove("preStop");
            }
        }
    }
}

#[tokio::test]
async fn sync_samples_from_empty_to_healthy_then_noop() {
    let tc = TestCluster::acquire_with("sync-samples", controllers()).await;
    install_k3s_crds(&tc).await;
    let mut samples = samples_in(&tc);
    assert_eq!(samples.len(), 2);
    if !tc.knows_prestop_sleep().await {
        // An older server (1.28) rejects the API Deployment: the whole
        // application is refused before its first write, naming the file.
        let (app, manifests) = &mut samples[0];
        let refused = sync(&tc, app, manifests).await;
        assert_eq!(refused.phase, RunPhase::Failed, "{refused:#?}");
        assert_eq!(
            refused.counts().failed + refused.counts().created,
            0,
            "{refused:#?}"
        );
        assert!(
            refused.objects.iter().all(|o| o.outcome != Effect::Applied),
            "nothing is half-applied: {refused:#?}"
        );
        let error = refused.errors.join("\n");
        assert!(
            error.contains("api/deployment.yaml") && error.contains("preStop.sleep"),
            "the error names the file and the field: {error}"
        );
        without_prestop_sleep(manifests);
    }
    for (app, manifests) in &samples {
        let first = sync(&tc, app, manifests).await;
        assert_eq!(
            first.counts().failed + first.counts().not_attempted,
            0,
            "everything is applied: {first:#?}"
        );
        assert!(first.errors.is_empty(), "{}: {first:#?}", app.name);
        assert_eq!(first.phase, RunPhase::Synced, "{first:#?}");
        assert_eq!(first.health, HealthStatus::Healthy, "{first:#?}");
    }
    for (app, manifests) in &samples {
        let again = sync(&tc, app, manifests).await;
        let applied = again
            .objects
            .iter()
            .filter(|o| o.outcome == Effect::Applied)
            .count();
        assert_eq!(applied, 0, "a second run is a no-op: {again:#?}");
        assert_eq!(again.requests.dry_runs, 0);
        assert_eq!(
            again.requests.writes,
            u64::from(again.status_recorded),
            "{again:#?}"
        );
    }
    tc.cleanup().await;
}

#[tokio::test]
async fn sync_adopts_unowned_objects_and_refuses_another_applications() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let tc = TestCluster::acquire("sync-adopt").await;
    let ns = tc.namespace().to_string();
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), &ns);
    let by_hand: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "by-hand"}, "data": {"greeting": "old"}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &by_hand).await.unwrap();

    let app = app(&tc, "");
    let desired = vec![config_map(&ns, "by-hand", "new")];
    let (adopting, _) = plan(&tc, &app, &desired).await;
    assert_eq!(
        (adopting.changes[0].action, adopting.changes[0].reason),
        (Action::Update, Reason::Adopt),
        "{adopting:#?}"
    );
    assert!(
        adopting.changes[0]
            .diff
            .as_deref()
            .unwrap_or("")
            .contains("new"),
        "{adopting:#?}"
    );
    let adopted = sync(&tc, &app, &desired).await;
    assert_eq!(
        outcome(&adopted, "ConfigMap", "by-hand").outcome,
        Effect::Applied
    );
    assert_eq!(live_greeting(&tc, "by-hand").await, "new");

    // Another application declaring the same object is an error, not a tug of war.
    let mut other = app.clone();
    other.name = format!("other-{}", &ns[ns.len() - 5..]);
    let (contested, _) = plan(&tc, &other, &desired).await;
    let problem = contested.problems.first().expect("a problem").to_string();
    assert!(
        problem.contains("already managed by application") && problem.contains(&ns),
        "{problem}"
    );
    tc.cleanup().await;
}

/// Collects every progress event of a run, in order.
fn recorder() -> (
    relbot::progress::Progress,
    std::sync::Arc<std::sync::Mutex<Vec<relbot::progress::ProgressEvent>>>,
) {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = relbot::progress::Progress::to(std::sync::Arc::new(
        move |e: relbot::progress::ProgressEvent| sink.lock().unwrap().push(e),
    ));
    (progress, events)
}

#[tokio::test]
async fn sync_reports_planning_waves_applies_health_waits_and_prunes_in_order() {
    use relbot::progress::ProgressEvent as E;
    let tc = TestCluster::acquire_with("sync-progress", controllers()).await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let mut later = config_map(&ns, "later", "b");
    later.object["metadata"]["annotations"] = json!({"relbot.dev/sync-wave": "1"});
    let all = vec![
        deployment(&ns, "web", "nginx:1.27", Some(1)),
        service(&ns, "web"),
        later,
    ];
    let cluster = cluster(&tc);
    let index = cluster.discover().await.expect("discovery");
    let (progress, events) = recorder();
    let settings = SyncSettings {
        progress,
        ..settings(&tc)
    };
    let result = sync_application(&cluster, &index, &app, &all, Some("rev1"), &settings).await;
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");
    let events = std::mem::take(&mut *events.lock().unwrap());

    assert_eq!(
        events.first(),
        Some(&E::Planning {
            app: ns.clone(),
            objects: 3
        }),
        "{events:#?}"
    );
    assert_eq!(events.last(), Some(&E::AppFinished { app: ns.clone() }));
    // Waves are announced in order, each once, numbered 1..=n of n.
    let waves: Vec<(usize, usize, String)> = events
        .iter()
        .filter_map(|e| match e {
            E::Wave {
                step, steps, name, ..
            } => Some((*step, *steps, name.clone())),
            _ => None,
        })
        .collect();
    let n = waves.len();
    assert!(n >= 2, "{events:#?}");
    for (i, (step, steps, _)) in waves.iter().enumerate() {
        assert_eq!((*step, *steps), (i + 1, n), "{events:#?}");
    }
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, E::Wave { total, .. } if *total != 3)),
        "every wave knows the run writes 3 objects: {events:#?}"
    );
    let names: Vec<&str> = waves.iter().map(|w| w.2.as_str()).collect();
    let wave0 = names.iter().position(|n| *n == "wave 0").expect("wave 0");
    let wave1 = names.iter().position(|n| *n == "wave 1").expect("wave 1");
    assert!(wave0 < wave1, "{names:?}");
    // The applied counter counts every write once, up to the total.
    let applied: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            E::Applied { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(applied, [(1, 3), (2, 3), (3, 3)], "{events:#?}");
    // The Deployment needs a moment to become ready: its wave waits for
    // health after its objects are applied and before the next wave starts.
    let at = |pred: &dyn Fn(&E) -> bool| events.iter().position(pred).expect("event");
    let wait = at(
        &|e| matches!(e, E::WaitingForHealth { name, waiting, .. } if name == "wave 0" && *waiting >= 1),
    );
    let second_applied = at(&|e| matches!(e, E::Applied { done: 2, .. }));
    let wave1_starts = at(&|e| matches!(e, E::Wave { name, .. } if name == "wave 1"));
    assert!(second_applied < wait && wait < wave1_starts, "{events:#?}");
    assert!(!events.iter().any(|e| matches!(e, E::Pruning { .. })));

    // Removing the ConfigMap: nothing to write, one prune, counted.
    let (progress, events) = recorder();
    let settings = SyncSettings {
        progress,
        ..settings
    };
    let result = sync_application(&cluster, &index, &app, &all[..2], Some("rev2"), &settings).await;
    assert_eq!(result.counts().pruned, 1, "{result:#?}");
    let events = std::mem::take(&mut *events.lock().unwrap());
    let prunes: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            E::Pruning { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(prunes, [(0, 1), (1, 1)], "{events:#?}");
    assert!(!events.iter().any(|e| matches!(e, E::Applied { .. })));
    assert_eq!(events.last(), Some(&E::AppFinished { app: ns.clone() }));
    tc.cleanup().await;
}

/// `relbot sync` (the CLI) does not wait for the last wave's rollouts: no
/// health gate runs after it and the run is Synced as soon as it is written;
/// serve (and `--wait`) gate the last wave too.
#[tokio::test]
async fn sync_without_wait_does_not_gate_the_last_wave() {
    let tc = TestCluster::acquire_with("sync-nowait", controllers()).await;
    let ns = tc.namespace().to_string();
    let app = app(&tc, "");
    let desired = vec![deployment(&ns, "web", "nginx:1.27", Some(1))];
    let cluster = cluster(&tc);
    let index = cluster.discover().await.expect("discovery");
    let no_wait = SyncSettings {
        wait_for_last_wave: false,
        ..settings(&tc)
    };
    let result = sync_application(&cluster, &index, &app, &desired, Some("rev1"), &no_wait).await;
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");
    assert_eq!(result.counts().created, 1, "{result:#?}");
    assert_eq!(
        result.timings.health_ms, 0,
        "no gate after the last wave: {result:#?}"
    );

    let mut changed = desired.clone();
    changed[0].object["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let waited = sync_application(
        &cluster,
        &index,
        &app,
        &changed,
        Some("rev2"),
        &settings(&tc),
    )
    .await;
    assert_eq!(
        waited.health,
        HealthStatus::Healthy,
        "serve's default waits: {waited:#?}"
    );
    tc.cleanup().await;
}

/// `relbot sync --dry-run --source DIR` on a folder holding one application
/// with a CRD and a custom resource of it; (exit code, stdout + stderr).
fn dry_run_cli(tc: &TestCluster, crd: &Value, widget: &Value) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ns = tc.namespace();
    std::fs::write(
        dir.path().join("relbot.yaml"),
        format!("applications:\n  - name: {ns}\n    path: app\n    namespace: {ns}\n"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let yaml = |v: &Value| serde_saphyr::to_string(v).expect("yaml");
    std::fs::write(dir.path().join("app/crd.yaml"), yaml(crd)).unwrap();
    std::fs::write(
        dir.path().join("app/widget.yaml"),
        format!("# a widget\n{}", yaml(widget)),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(["sync", "--dry-run", "--no-progress", "--source"])
        .arg(dir.path())
        .env("KUBECONFIG", tc.kubeconfig_path())
        .env("HOME", dir.path())
        .output()
        .expect("run relbot");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn dry_run_checks_a_custom_resource_against_the_crd_the_same_app_creates() {
    let tc = TestCluster::acquire("sync-crd-schema").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    let crd = strict_widget_crd(&group);

    let bad = widget(&group, &ns, json!({"size": "three", "foo": 1}));
    let (code, text) = dry_run_cli(&tc, &crd, &bad);
    assert_eq!(code, Some(2), "{text}");
    for expected in [
        "app/widget.yaml:2",
        &format!("Widget.{group} {ns}/w1"),
        "unknown field \"spec.foo\"",
        "spec.size: \"three\" is not of type \"integer\"",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }

    let good = widget(
        &group,
        &ns,
        json!({"size": 3, "port": "http", "extra": {"any": [1]}}),
    );
    let (code, text) = dry_run_cli(&tc, &crd, &good);
    assert_eq!(code, Some(1), "changes to make, no error:\n{text}");
    assert!(
        text.contains("checked against the schema of its CRD"),
        "{text}"
    );
    assert!(
        text.contains("1 CEL rule(s)") && text.contains("self.size < 100"),
        "what only the server checks is listed and counted:\n{text}"
    );
    assert!(!text.contains("error"), "{text}");
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}

#[tokio::test]
async fn a_custom_resource_the_local_check_refuses_is_what_the_server_refuses() {
    let tc = TestCluster::acquire("sync-crd-fidelity").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    let app = app(&tc, "");
    let crd = manifest(strict_widget_crd(&group), 1);
    let bad = manifest(widget(&group, &ns, json!({"size": 2, "foo": 1})), 40);

    // Empty cluster: the sync stops at the plan, before its first write.
    let result = sync(&tc, &app, &[crd.clone(), bad.clone()]).await;
    assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
    assert!(
        result
            .objects
            .iter()
            .all(|o| matches!(o.outcome, Effect::NotAttempted(_))),
        "nothing applied: {result:#?}"
    );
    {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(tc.client());
        let name = format!("widgets.{group}");
        assert!(
            crds.get_opt(&name).await.unwrap().is_none(),
            "the CRD was not written"
        );
    }
    let local = result.errors.join("\n");
    assert!(local.contains("unknown field \"spec.foo\""), "{local}");
    assert!(local.contains("apps/shop/all.yaml:40"), "{local}");

    // With the CRD in place the server itself judges the same object.
    let created = sync(&tc, &app, std::slice::from_ref(&crd)).await;
    assert_eq!(created.phase, RunPhase::Synced, "{created:#?}");
    let result = sync(&tc, &app, &[crd.clone(), bad]).await;
    let server = result.errors.join("\n");
    assert!(
        server.contains("the server rejected it") && server.contains("spec.foo"),
        "{server}"
    );
    if !tc.is_kubesim().await {
        // kubesim checks undeclared fields only; a real server checks values too.
        let wrong_type = manifest(widget(&group, &ns, json!({"size": "three"})), 40);
        let result = sync(&tc, &app, &[crd, wrong_type]).await;
        let server = result.errors.join("\n");
        assert!(server.contains("spec.size"), "{server}");
    }
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}
