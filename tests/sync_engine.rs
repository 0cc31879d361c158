//! The one sync engine end to end: `ResourceManager` plans and executes for
//! the CLI and `relbot serve` alike, and its dry-run reports what the sync
//! would hit. Runs on the emulator by default, on a real kube-apiserver with
//! RELBOT_TEST_KUBECONFIG. Every test works in its own namespace.

#[path = "support/git.rs"]
mod git_support;
#[path = "support/standin.rs"]
mod standin;
#[path = "support/sync.rs"]
mod sync_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git_support::{BareRepo, TestRepo, free_port};
use kubesim::testing::TestCluster;
use relbot::cluster::client::ReadOnlyCluster;
use relbot::source::DesiredApplication;
use relbot::sync::change_set::ChangeSet;
use relbot::sync::engine::{PlanTarget, ResourceManager};
use relbot::sync::result::{Effect, SyncResult};
use relbot::sync::settings::SyncSettings;
use serde_json::{Value, json};
use sync_support::{application, cluster, delete_crd, manifest, strict_widget_crd, widget};

fn desired(tc: &TestCluster, objects: &[(Value, usize)]) -> DesiredApplication {
    desired_with(tc, "", objects)
}

/// The application of `tc` with `extra` YAML lines (`sync:` settings), and
/// its objects.
fn desired_with(tc: &TestCluster, extra: &str, objects: &[(Value, usize)]) -> DesiredApplication {
    DesiredApplication {
        app: application(tc, extra),
        manifests: objects
            .iter()
            .map(|(object, line)| manifest(object.clone(), *line))
            .collect(),
        notes: Vec::new(),
    }
}

/// The shared settings, without the wait for the last wave (a caller of
/// the engine's steps waits when it asks to).
fn settings(tc: &TestCluster) -> SyncSettings {
    SyncSettings {
        wait_for_last_wave: false,
        ..sync_support::settings(tc)
    }
}

async fn dry_run(tc: &TestCluster, want: &DesiredApplication) -> ChangeSet {
    let read: ReadOnlyCluster = cluster(tc).read_only().clone();
    let manager = ResourceManager::read_only(PlanTarget::Live(read))
        .await
        .expect("discovery");
    assert!(manager.is_dry_run());
    manager.run(want.clone(), Some("rev1"), &settings(tc)).await
}

async fn sync(tc: &TestCluster, want: &DesiredApplication) -> ChangeSet {
    let manager = ResourceManager::writable(cluster(tc))
        .await
        .expect("discovery");
    manager.run(want.clone(), Some("rev1"), &settings(tc)).await
}

/// Deployment `web` in `ns` running `image`.
fn deployment_of(ns: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

fn config_map(ns: &str, name: &str, wave: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"argocd.argoproj.io/sync-wave": wave}},
        "data": {"greeting": "hello"}})
}

/// A widget the server refuses: `spec.foo` is not in the schema.
fn bad_widget(group: &str, ns: &str) -> Value {
    let mut widget = widget(group, ns, json!({"size": 2, "foo": 1}));
    widget["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": "0"});
    widget
}

async fn config_map_exists(tc: &TestCluster, ns: &str, name: &str) -> bool {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(tc.client(), ns);
    api.get_opt(name).await.expect("read ConfigMap").is_some()
}

#[tokio::test]
async fn a_wave_with_one_server_rejected_object_writes_nothing() {
    let tc = TestCluster::acquire("engine-half-wave").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    // The CRD first, so the server itself judges the widget.
    let crd = (strict_widget_crd(&group), 1);
    let installed = sync(&tc, &desired(&tc, std::slice::from_ref(&crd))).await;
    assert!(installed.errors.is_empty(), "{installed:#?}");

    let want = desired(
        &tc,
        &[
            crd,
            (config_map(&ns, "first", "0"), 20),
            (config_map(&ns, "second", "0"), 30),
            (bad_widget(&group, &ns), 40),
            (config_map(&ns, "later", "1"), 50),
        ],
    );
    let changes = sync(&tc, &want).await;
    assert_eq!(
        changes.written(),
        0,
        "nothing is half-applied: {changes:#?}"
    );
    let errors = changes.errors.join("\n");
    assert!(
        errors.contains("apps/shop/all.yaml:40") && errors.contains("spec.foo"),
        "the rejection names the object's file:line and the server's words: {errors}"
    );
    for name in ["first", "second", "later"] {
        assert!(
            !config_map_exists(&tc, &ns, name).await,
            "{name} was written"
        );
    }
    assert!(
        changes
            .entries
            .iter()
            .filter(|e| e.key.kind == "ConfigMap")
            .all(|e| matches!(e.outcome, Some(Effect::NotAttempted(_)))),
        "{changes:#?}"
    );
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}

/// A real server's dry-run does not allocate a Service's node port, so one
/// out of range passes it. The plan says so, and the sync writes that
/// Service before anything else of its wave: its refusal leaves the wave
/// unwritten.
#[tokio::test]
async fn a_node_port_only_the_write_can_refuse_is_written_first_in_its_wave() {
    let tc = TestCluster::acquire("engine-node-port").await;
    let ns = tc.namespace().to_string();
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 99}]}});
    let want = desired(
        &tc,
        &[
            (config_map(&ns, "first", "0"), 10),
            (config_map(&ns, "second", "0"), 20),
            (service, 30),
        ],
    );
    let preview = dry_run(&tc, &want).await;
    assert!(preview.errors.is_empty(), "{preview:#?}");
    let relbot::sync::change_set::Detail::Plan(plan) = &preview.detail else {
        panic!("a dry-run holds its plan: {preview:#?}");
    };
    let web = plan.changes.iter().find(|c| c.key.name == "web");
    assert!(
        web.is_some_and(|c| c
            .notes
            .iter()
            .any(|n| n.contains("checked only when it is written"))),
        "{plan:#?}"
    );

    let changes = sync(&tc, &want).await;
    assert_eq!(changes.written(), 0, "{changes:#?}");
    let refused = entry(&changes, "web");
    assert!(
        matches!(&refused.outcome, Some(Effect::Failed(m)) if m.contains("nodePort") && m.contains("30000-32767")),
        "{changes:#?}"
    );
    for name in ["first", "second"] {
        assert!(
            !config_map_exists(&tc, &ns, name).await,
            "{name} was written"
        );
    }
    tc.cleanup().await;
}

/// The dry-run and the sync of the same objects on a cluster that has none
/// of them stop on the same errors; the sync writes nothing.
async fn assert_dry_run_tells_what_the_sync_hits(
    tc: &TestCluster,
    want: &DesiredApplication,
    expected: &[&str],
) {
    let dry = dry_run(tc, want).await;
    assert!(dry.dry_run);
    let text = dry.errors.join("\n");
    for words in expected {
        assert!(
            text.contains(words),
            "{words:?} missing from the dry-run's errors: {dry:#?}"
        );
    }
    let real = sync(tc, want).await;
    assert_eq!(
        dry.errors, real.errors,
        "the dry-run reports the errors the sync hits"
    );
    assert_eq!(real.written(), 0, "{real:#?}");
}

#[tokio::test]
async fn dry_run_on_an_empty_cluster_reports_the_sync_errors_for_a_new_namespace() {
    let tc = TestCluster::acquire("engine-dry-ns").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    let crd = (strict_widget_crd(&group), 1);
    let installed = sync(&tc, &desired(&tc, std::slice::from_ref(&crd))).await;
    assert!(installed.errors.is_empty(), "{installed:#?}");

    let fresh = format!("{ns}-fresh");
    let want = desired(
        &tc,
        &[
            crd,
            (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}}),
                10,
            ),
            (config_map(&fresh, "settings", "0"), 20),
            (bad_widget(&group, &fresh), 40),
        ],
    );
    assert_dry_run_tells_what_the_sync_hits(&tc, &want, &["apps/shop/all.yaml:40", "spec.foo"])
        .await;
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: kube::Api<Namespace> = kube::Api::all(tc.client());
    let created = namespaces.get_opt(&fresh).await.expect("read Namespace");
    if created.is_some() {
        let _ = namespaces.delete(&fresh, &Default::default()).await;
    }
    assert!(created.is_none(), "the new namespace was not written");
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}

#[tokio::test]
async fn dry_run_on_an_empty_cluster_reports_the_sync_errors_for_a_cr_of_a_new_crd() {
    let tc = TestCluster::acquire("engine-dry-crd").await;
    let ns = tc.namespace().to_string();
    let group = format!("{ns}.example.com");
    let want = desired(
        &tc,
        &[
            (strict_widget_crd(&group), 1),
            (config_map(&ns, "settings", "0"), 20),
            (bad_widget(&group, &ns), 40),
        ],
    );
    assert_dry_run_tells_what_the_sync_hits(
        &tc,
        &want,
        &["apps/shop/all.yaml:40", "unknown field \"spec.foo\""],
    )
    .await;
    delete_crd(&tc, &group).await;
    tc.cleanup().await;
}

/// A create would keep two entries with one key; the apply that writes the
/// object refuses them, so the dry-run must too.
#[tokio::test]
async fn dry_run_of_a_new_object_refuses_duplicate_list_keys_as_the_apply_does() {
    let tc = TestCluster::acquire("engine-dry-duplicates").await;
    let ns = tc.namespace().to_string();
    let mut web = deployment_of(&ns, "nginx");
    web["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 8080}, {"containerPort": 8080}]);
    let want = desired(&tc, &[(config_map(&ns, "settings", "0"), 20), (web, 30)]);
    assert_dry_run_tells_what_the_sync_hits(
        &tc,
        &want,
        &[
            "apps/shop/all.yaml:30",
            "duplicate entries for key [containerPort=8080,protocol=\"TCP\"]",
        ],
    )
    .await;
    assert!(!config_map_exists(&tc, &ns, "settings").await);
    tc.cleanup().await;
}

/// A ChangeSet as JSON with the test's namespace and application name
/// replaced, so runs in two namespaces compare.
fn normalised(changes: &ChangeSet, ns: &str) -> Value {
    let text = serde_json::to_string(changes).expect("JSON");
    serde_json::from_str(&text.replace(ns, "NS")).expect("JSON")
}

async fn wait_for_stored_result(
    tc: &TestCluster,
    revision: &str,
    log: &std::path::Path,
) -> SyncResult {
    let read = cluster(tc).read_only().clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(result) = relbot::sync::status::read(&read, tc.namespace(), tc.namespace())
            .await
            .and_then(|s| s.result)
            .filter(|r| r.revision.as_deref() == Some(revision))
        {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "relbot serve recorded no result for {revision} within 90 s; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn serve_and_the_cli_produce_the_same_change_set_for_one_revision() {
    let cli_tc = TestCluster::acquire("engine-cli").await;
    let serve_tc = TestCluster::acquire("engine-serve").await;
    let application = |ns: &str| {
        format!(
            "  - name: {ns}\n    path: apps/shop\n    namespace: {ns}\n    sync: {{ prune: true, selfHeal: true }}\n"
        )
    };
    let bare = BareRepo::new("engine-config");
    let work = TestRepo::clone_from(&bare.url());
    work.write(
        "apps/shop/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  greeting: hello\n",
    );
    work.write(
        "apps/shop/b.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\ndata:\n  greeting: later\n",
    );
    work.write(
        "apps/shop/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: 80\n      targetPort: 8080\n  selector:\n    app: web\n",
    );
    // The CLI reads the repository's relbot.yaml; serve its own --config.
    let cli_ns = cli_tc.namespace().to_string();
    work.write(
        "relbot.yaml",
        &format!(
            "status:\n  namespace: {cli_ns}\napplications:\n{}",
            application(&cli_ns)
        ),
    );
    let revision = work.commit("shop");
    work.git(&["push", "-q", "origin", "main"]);

    let cli = Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(["sync", "--no-progress", "-o", "json", "--source"])
        .arg(work.path())
        .env("KUBECONFIG", cli_tc.kubeconfig_path())
        .env("HOME", work.path())
        .output()
        .expect("run relbot sync");
    let document: Value = serde_json::from_slice(&cli.stdout).unwrap_or_else(|e| {
        panic!(
            "relbot sync -o json: {e}\n{}",
            String::from_utf8_lossy(&cli.stderr)
        )
    });
    let cli_result: SyncResult =
        serde_json::from_value(document["applications"][0].clone()).expect("a SyncResult");
    assert_eq!(cli_result.revision.as_deref(), Some(revision.as_str()));

    let serve_ns = serve_tc.namespace().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relbot.yaml");
    std::fs::write(
        &config,
        format!(
            "repo:\n  url: {}\n  branch: main\n  interval: 1h\nstatus:\n  namespace: {serve_ns}\napplications:\n{}",
            bare.url(),
            application(&serve_ns)
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(serve_tc.kubeconfig_path())
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("POD_NAME", format!("engine-{port}"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start relbot serve");
    let serve_result = wait_for_stored_result(&serve_tc, &revision, &log).await;
    let _ = serve.kill();
    let _ = serve.wait();

    // Every object was created, so the stored result keeps them all.
    let from_cli = ChangeSet::synced(cli_result);
    let from_serve = ChangeSet::synced(serve_result);
    assert_eq!(from_cli.entries.len(), 3, "{from_cli:#?}");
    assert_eq!(from_cli.written(), 3, "{from_cli:#?}");
    assert_eq!(
        normalised(&from_cli, &cli_ns),
        normalised(&from_serve, &serve_ns),
        "the CLI and serve made the same changes"
    );
    cli_tc.cleanup().await;
    serve_tc.cleanup().await;
}

fn entry<'a>(changes: &'a ChangeSet, name: &str) -> &'a relbot::sync::change_set::ChangeSetEntry {
    changes
        .entries
        .iter()
        .find(|e| e.key.name == name)
        .unwrap_or_else(|| panic!("no entry for {name}: {changes:#?}"))
}

/// Prune is a step of its own: a run that applies and finishes without it
/// deletes nothing (and says so); the next run's prune deletes what git no
/// longer has.
#[tokio::test]
async fn prune_deletes_only_when_the_caller_prunes() {
    let tc = TestCluster::acquire("engine-prune-step").await;
    let ns = tc.namespace().to_string();
    let both = desired(
        &tc,
        &[
            (config_map(&ns, "kept", "0"), 1),
            (config_map(&ns, "gone", "0"), 2),
        ],
    );
    let first = sync(&tc, &both).await;
    assert!(first.errors.is_empty(), "{first:#?}");

    let manager = ResourceManager::writable(cluster(&tc))
        .await
        .expect("discovery");
    let settings = settings(&tc);
    let one = desired(&tc, &[(config_map(&ns, "kept", "0"), 1)]);
    let staged = manager.plan(one.clone(), Some("rev2"), &settings).await;
    let run = manager.apply(staged, &settings).await;
    let unpruned = manager.finish(run).await;
    let gone = entry(&unpruned, "gone");
    assert!(
        matches!(&gone.outcome, Some(Effect::NotAttempted(why)) if why.contains("prune")),
        "{unpruned:#?}"
    );
    assert!(config_map_exists(&tc, &ns, "gone").await);

    let staged = manager.plan(one, Some("rev2"), &settings).await;
    let mut run = manager.apply(staged, &settings).await;
    manager.prune(&mut run).await;
    let pruned = manager.finish(run).await;
    assert_eq!(
        entry(&pruned, "gone").outcome,
        Some(Effect::Applied),
        "{pruned:#?}"
    );
    assert_eq!(pruned.written(), 1, "only the prune writes: {pruned:#?}");
    assert!(!config_map_exists(&tc, &ns, "gone").await);
    assert!(config_map_exists(&tc, &ns, "kept").await);
    tc.cleanup().await;
}

/// Prune honours the plan's limits: a share above `sync.maxPrunePercent`
/// is held, and nothing is deleted.
#[tokio::test]
async fn prune_holds_a_share_above_max_prune_percent() {
    let tc = TestCluster::acquire("engine-prune-share").await;
    let ns = tc.namespace().to_string();
    let objects = [
        (config_map(&ns, "a", "0"), 1),
        (config_map(&ns, "b", "0"), 2),
    ];
    let first = sync(
        &tc,
        &desired_with(&tc, "sync: {maxPrunePercent: 40}\n", &objects),
    )
    .await;
    assert!(first.errors.is_empty(), "{first:#?}");

    let manager = ResourceManager::writable(cluster(&tc))
        .await
        .expect("discovery");
    let settings = settings(&tc);
    let half = desired_with(&tc, "sync: {maxPrunePercent: 40}\n", &objects[..1]);
    let staged = manager.plan(half, Some("rev2"), &settings).await;
    let mut run = manager.apply(staged, &settings).await;
    manager.prune(&mut run).await;
    let changes = manager.finish(run).await;
    let b = entry(&changes, "b");
    assert!(
        b.held
            .as_deref()
            .is_some_and(|why| why.contains("prune refused")),
        "{changes:#?}"
    );
    assert!(config_map_exists(&tc, &ns, "b").await);
    tc.cleanup().await;
}

/// Wait is a step of its own, with the caller's timeout: a last wave that
/// does not become healthy in time fails the run and stops it before prune.
const WHY: &str = "still Progressing 15 s after it was applied (healthTimeout)";

/// A sync told its rollout is overdue: its result, and the result its
/// status record holds.
async fn sync_overdue(
    manager: &ResourceManager,
    tc: &TestCluster,
    objects: &[(Value, usize)],
) -> (SyncResult, SyncResult) {
    let settings = settings(tc);
    let staged = manager
        .plan(desired(tc, objects), Some("rev1"), &settings)
        .await;
    let mut run = manager.apply(staged, &settings).await;
    run.fail_if_still_progressing(WHY.into());
    manager.prune(&mut run).await;
    let changes = manager.finish(run).await;
    let result = changes.result().expect("a sync").clone();
    let stored =
        relbot::sync::status::read(cluster(tc).read_only(), tc.namespace(), &result.application)
            .await
            .and_then(|s| s.result)
            .expect("a status record");
    (result, stored)
}

/// serve's verdict on a rollout it has watched past `healthTimeout`: the
/// run fails only when it ends still Progressing, and the status record says
/// so (it is decided before the record is written).
#[tokio::test]
async fn a_rollout_its_caller_gave_up_on_fails_the_run_and_its_record() {
    use relbot::cluster::health::HealthStatus;
    use relbot::sync::result::RunPhase;
    let tc = TestCluster::acquire("engine-overdue").await;
    let ns = tc.namespace().to_string();
    let manager = ResourceManager::writable(cluster(&tc))
        .await
        .expect("discovery");
    // Settled: the verdict does not apply.
    let (result, _) = sync_overdue(&manager, &tc, &[(config_map(&ns, "settings", "0"), 1)]).await;
    assert_eq!(result.health, HealthStatus::Healthy, "{result:#?}");
    assert_eq!(result.phase, RunPhase::Synced, "{result:#?}");

    // A Deployment just applied is Progressing (or, where a controller has
    // already judged its image, Degraded; the verdict is for Progressing).
    const IMAGE: &str = "registry.example/engine-overdue-never-pulls:1.0";
    standin::set_image_failing(tc.client(), IMAGE, true).await;
    let web = deployment_of(&ns, IMAGE);
    let objects = [(config_map(&ns, "settings", "0"), 1), (web, 5)];
    let (result, stored) = sync_overdue(&manager, &tc, &objects).await;
    if result.health == HealthStatus::Progressing {
        assert_eq!(result.phase, RunPhase::Failed, "{result:#?}");
        assert_eq!(result.errors, [WHY]);
        assert_eq!(stored.phase, RunPhase::Failed, "the record says it too");
        assert_eq!(stored.errors, [WHY]);
    } else {
        assert_eq!(result.health, HealthStatus::Degraded, "{result:#?}");
        assert!(!result.errors.iter().any(|e| e == WHY), "{result:#?}");
    }
    standin::set_image_failing(tc.client(), IMAGE, false).await;
    tc.cleanup().await;
}

#[tokio::test]
async fn wait_gives_up_after_the_callers_timeout_and_prune_then_holds_off() {
    let tc = TestCluster::acquire("engine-wait-step").await;
    let ns = tc.namespace().to_string();
    let keep = (config_map(&ns, "keep", "0"), 1);
    let old = (config_map(&ns, "old", "0"), 2);
    let first = sync(&tc, &desired(&tc, &[keep.clone(), old])).await;
    assert!(first.errors.is_empty(), "{first:#?}");

    // Its image never pulls (on the emulator, which runs no controllers for
    // this cluster, nothing rolls out anyway): the Deployment never becomes
    // available.
    const IMAGE: &str = "registry.example/engine-wait-never-pulls:1.0";
    standin::set_image_failing(tc.client(), IMAGE, true).await;
    let web = deployment_of(&ns, IMAGE);
    let manager = ResourceManager::writable(cluster(&tc))
        .await
        .expect("discovery");
    let settings = settings(&tc);
    let staged = manager
        .plan(desired(&tc, &[keep, (web, 5)]), Some("rev2"), &settings)
        .await;
    let mut run = manager.apply(staged, &settings).await;
    let waiting = std::time::Instant::now();
    manager.wait(&mut run, Duration::from_secs(1)).await;
    let waited = waiting.elapsed();
    manager.prune(&mut run).await;
    let changes = manager.finish(run).await;
    let errors = changes.errors.join("\n");
    // The caller's timeout (1s), not the application's (10s). Where a
    // controller reports the failed pull, the rollout is Degraded sooner.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(
        (errors.contains("not healthy after 1s") || errors.contains("is Degraded"))
            && errors.contains("Deployment.apps"),
        "{errors}"
    );
    assert!(
        matches!(
            &entry(&changes, "old").outcome,
            Some(Effect::NotAttempted(_))
        ),
        "{changes:#?}"
    );
    assert!(config_map_exists(&tc, &ns, "old").await);
    standin::set_image_failing(tc.client(), IMAGE, false).await;
    tc.cleanup().await;
}
