//! Rendering end to end: the sample platform (native kustomize, cross-checked
//! against the real `kubectl kustomize` when installed), directory
//! applications with JSON, Lists and globs, ordering, duplicates across
//! applications, and the external-kustomize fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use relbot::config::{Application, Config};
use relbot::manifest::Manifest;
use relbot::source::{
    self, DesiredApplication, KustomizeTool, ProblemCode, RenderOptions, Severity, Stage,
};
use serde_json::{Value, json};

fn sample_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests-sample")
}

fn offline() -> RenderOptions {
    RenderOptions {
        kustomize: KustomizeTool::Disabled,
    }
}

fn load_sample() -> Vec<DesiredApplication> {
    let loaded = relbot::config::load(&sample_root().join("relbot.yaml"))
        .unwrap_or_else(|e| panic!("sample config: {e}"));
    assert_eq!(loaded.policies.len(), 5, "one ImagePolicy per sample image");
    source::load_desired_with(&sample_root(), &loaded.config, &offline())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(app: &'a DesiredApplication, kind: &str, name: &str) -> &'a Manifest {
    app.manifests
        .iter()
        .find(|m| m.kind() == kind && m.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn sample_platform_renders_and_validates_with_only_discovery_notes() {
    let apps = load_sample();
    let names: Vec<_> = apps.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["platform", "monitoring"]);
    let (platform, monitoring) = (&apps[0], &apps[1]);

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &platform.manifests {
        *kinds.entry(m.kind()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = [
        ("Namespace", 1),
        ("Deployment", 4),
        ("Service", 5),
        ("StatefulSet", 1),
        ("HorizontalPodAutoscaler", 1),
        ("Ingress", 3),
        ("Middleware", 3),
    ]
    .into();
    assert_eq!(kinds, expected);
    assert_eq!(monitoring.manifests.len(), 1);
    assert_eq!(monitoring.manifests[0].kind(), "HelmChart");
    assert_eq!(monitoring.manifests[0].namespace(), Some("kube-system"));

    for app in &apps {
        for note in &app.notes {
            assert_eq!(
                (note.code, note.severity),
                (ProblemCode::NeedsDiscovery, Severity::Warning),
                "{note}"
            );
        }
    }
    let discovery: Vec<_> = platform
        .needs_discovery()
        .map(|n| n.object.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(discovery.len(), 3, "{discovery:?}");
    assert!(
        discovery
            .iter()
            .all(|d| d.starts_with("Middleware.traefik.io ahuora/")),
        "{discovery:?}"
    );
    assert_eq!(monitoring.needs_discovery().count(), 1);
}

#[test]
fn sample_objects_keep_their_origin_and_get_kustomize_transforms() {
    let apps = load_sample();
    let platform = &apps[0];
    let api = find(platform, "Deployment", "django-api");
    assert_eq!(api.origin.to_string(), "platform/api/deployment.yaml:2");
    assert_eq!(
        find(platform, "Service", "frontend").origin.to_string(),
        "platform/frontend/frontend.yaml:37"
    );
    assert_eq!(
        find(platform, "Middleware", "auth-prefix")
            .origin
            .to_string(),
        "platform/ingress/middlewares.yaml:25"
    );

    // images: newName keeps the tag.
    assert_eq!(
        api.object.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("docker.io/ahuora/django-api:0.0.17"))
    );
    assert_eq!(
        find(platform, "Deployment", "frontend")
            .object
            .pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("ahuora/frontend:0.0.12"))
    );
    // labels with includeTemplates: object and pod template, never the selector.
    assert_eq!(
        api.object
            .pointer("/metadata/labels/app.kubernetes.io~1part-of"),
        Some(&json!("ahuora"))
    );
    assert_eq!(
        api.object
            .pointer("/spec/template/metadata/labels/app.kubernetes.io~1part-of"),
        Some(&json!("ahuora"))
    );
    assert_eq!(
        api.object
            .pointer("/spec/selector/matchLabels/app.kubernetes.io~1part-of"),
        None
    );
    // namespace: every namespaced object, not the Namespace itself.
    for m in &platform.manifests {
        let expected = if m.kind() == "Namespace" {
            None
        } else {
            Some("ahuora")
        };
        assert_eq!(m.namespace(), expected, "{}", m.key());
    }
    // No Secret values are committed: only references.
    assert!(platform.manifests.iter().all(|m| m.kind() != "Secret"));
}

#[test]
fn sample_is_in_apply_order() {
    let apps = load_sample();
    let order: Vec<String> = apps[0]
        .manifests
        .iter()
        .map(|m| format!("{} {}", m.kind(), m.name()))
        .collect();
    assert_eq!(order[0], "Namespace ahuora");
    assert_eq!(
        source::sync_order(&apps[0].manifests[0]).stage,
        Stage::Definitions
    );
    let position = |s: &str| {
        order
            .iter()
            .position(|o| o == s)
            .unwrap_or_else(|| panic!("{s} in {order:?}"))
    };
    assert!(position("Service postgres") < position("StatefulSet postgres"));
    assert!(position("Deployment django-api") < position("HorizontalPodAutoscaler django-api"));
    assert!(position("StatefulSet postgres") < position("Ingress api"));
    assert!(
        position("Ingress api") < position("Middleware auth-prefix"),
        "unknown kinds last"
    );
}

/// Native rendering must produce what the real kustomize produces.
#[test]
fn native_kustomize_matches_kubectl_kustomize() {
    if !kubectl_available() {
        eprintln!("kubectl not installed: skipping the cross-check");
        return;
    }
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(sample_root().join("platform"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let theirs: Vec<Value> = relbot::source::yaml::parse_documents(&text)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect();

    let app: Application = serde_saphyr::from_str("name: platform\npath: platform\n").unwrap();
    let ours = source::render::render(&sample_root(), &app, &offline());
    assert!(ours.problems.is_empty(), "{:?}", ours.problems);
    let key = |v: &Value| {
        format!(
            "{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["name"].as_str().unwrap()
        )
    };
    let mut theirs: BTreeMap<String, Value> = theirs.into_iter().map(|v| (key(&v), v)).collect();
    let mut ours: BTreeMap<String, Value> = ours
        .objects
        .into_iter()
        .map(|o| (key(&o.manifest.object), o.manifest.object))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (k, mine) in &mut ours {
        let other = theirs.remove(k).unwrap();
        assert_eq!(*mine, other, "{k} differs from kubectl kustomize");
    }
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(yaml: &str) -> Config {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn directory_app_with_json_lists_and_globs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "apps/web/config.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"a": "1"}}"#,
    );
    write(
        root,
        "apps/web/list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: web\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: web\n  spec:\n    ports: [{port: 80}]\n",
    );
    write(
        root,
        "apps/web/drafts/old.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n",
    );
    write(root, "apps/web/README.md", "docs");
    let cfg = config(
        "applications:\n  - name: web\n    path: apps/web\n    namespace: web\n    exclude: ['drafts/**']\n",
    );
    let apps = source::load_desired_with(root, &cfg, &offline()).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<String> = apps[0]
        .manifests
        .iter()
        .map(|m| format!("{} {} {}", m.key(), m.origin.file.display(), m.origin.line))
        .collect();
    assert_eq!(
        got,
        [
            "ServiceAccount web/web apps/web/list.yaml 4",
            "ConfigMap web/web apps/web/config.json 1",
            "Service web/web apps/web/list.yaml 8",
        ]
    );
}

#[test]
fn argo_wave_annotations_order_within_the_app() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "a/all.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/sync-wave: \"-1\"\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: 'a:1'}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n  annotations:\n    relbot.dev/sync-wave: \"1\"\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\nprovisioner: rancher.io/local-path\n",
    );
    let cfg = config("applications:\n  - name: a\n    path: a\n    namespace: a\n");
    let apps = source::load_desired_with(root, &cfg, &offline()).unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<(&str, Stage, i64)> = apps[0]
        .manifests
        .iter()
        .map(|m| {
            let o = source::sync_order(m);
            (m.name(), o.stage, o.wave)
        })
        .collect();
    assert_eq!(
        order,
        [
            ("a", Stage::Definitions, 0),
            ("fast", Stage::Classes, 0),
            ("migrate", Stage::Resources, -1),
            ("after", Stage::Resources, 1)
        ]
    );
}

#[test]
fn two_apps_cannot_own_one_object_and_crds_teach_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: ns\n";
    write(root, "one/cm.yaml", cm);
    write(root, "two/cm.yaml", cm);
    write(
        root,
        "two/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Cluster\n  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n",
    );
    write(
        root,
        "one/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: ns\n",
    );
    let cfg = config("applications:\n  - name: one\n    path: one\n  - name: two\n    path: two\n");
    let err = source::load_desired_with(root, &cfg, &offline()).unwrap_err();
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "one/widget.yaml:5: error: Widget.example.com ns/w: Widget is cluster-scoped and cannot have a namespace (remove metadata.namespace: ns)",
            "two/cm.yaml:1: error: ConfigMap ns/shared: duplicate object: already declared by application \"one\" at one/cm.yaml:1",
        ]
    );
    assert!(
        err.to_string()
            .ends_with("2 errors in the desired state; nothing was applied"),
        "{err}"
    );
}

#[test]
fn unsupported_kustomize_field_without_a_binary_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "k/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n",
    );
    write(
        root,
        "k/kustomization.yaml",
        "resources:\n  - cm.yaml\nnamespace: k\npatches:\n  - target: {kind: ConfigMap, name: cm}\n    patch: |-\n      - op: replace\n        path: /data/a\n        value: \"2\"\n",
    );
    let cfg = config("applications:\n  - name: k\n    path: k\n");
    let err = source::load_desired_with(root, &cfg, &offline()).unwrap_err();
    let errors: Vec<_> = err.errors().collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(errors[0].origin.to_string(), "k/kustomization.yaml:4");
    assert_eq!(errors[0].code, ProblemCode::Kustomize);
    assert!(
        errors[0].message.contains("field `patches`")
            && errors[0].message.contains("no kustomize binary"),
        "{}",
        errors[0]
    );

    if !kubectl_available() {
        eprintln!("kubectl not installed: skipping the external kustomize half");
        return;
    }
    let external = RenderOptions {
        kustomize: KustomizeTool::Command(vec!["kubectl".into(), "kustomize".into()]),
    };
    let apps = source::load_desired_with(root, &cfg, &external).unwrap_or_else(|e| panic!("{e}"));
    let cm = &apps[0].manifests[0];
    assert_eq!(
        cm.object.pointer("/data/a"),
        Some(&json!("2")),
        "patch applied by kubectl kustomize"
    );
    assert_eq!(cm.namespace(), Some("k"));
    assert_eq!(cm.origin.to_string(), "k/kustomization.yaml:1");
    // Auto finds kubectl on PATH too.
    let apps = source::load_desired(root, &cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        apps[0].manifests[0].object.pointer("/data/a"),
        Some(&json!("2"))
    );
}

#[test]
fn nested_kustomizations_and_missing_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "base/kustomization.yaml",
        "resources: [deploy.yaml]\ncommonLabels:\n  tier: base\n",
    );
    write(
        root,
        "base/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: 'nginx:1.27'}]\n",
    );
    write(
        root,
        "overlay/kustomization.yaml",
        "namespace: prod\nresources:\n  - ../base\nimages:\n  - name: nginx\n    newTag: \"1.27.1\"\n",
    );
    let cfg = config("applications:\n  - name: web\n    path: overlay\n");
    let apps = source::load_desired_with(root, &cfg, &offline()).unwrap_or_else(|e| panic!("{e}"));
    let web = &apps[0].manifests[0];
    assert_eq!(web.origin.to_string(), "base/deploy.yaml:1");
    assert_eq!(web.namespace(), Some("prod"));
    assert_eq!(
        web.object.pointer("/spec/selector/matchLabels/tier"),
        Some(&json!("base"))
    );
    assert_eq!(
        web.object.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.27.1"))
    );

    write(
        root,
        "overlay/kustomization.yaml",
        "namespace: prod\nresources:\n  - ../base\n  - missing.yaml\n",
    );
    let err = source::load_desired_with(root, &cfg, &offline()).unwrap_err();
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "overlay/kustomization.yaml:4: error: resource \"missing.yaml\" not found (overlay/missing.yaml does not exist)"
        ]
    );
}

/// The other native transforms, on kinds with selectors, templates and
/// subjects, must also match the real kustomize.
#[test]
fn native_transforms_match_kubectl_kustomize_on_a_wider_fixture() {
    if !kubectl_available() {
        eprintln!("kubectl not installed: skipping the cross-check");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "base/kustomization.yaml",
        "resources: [workloads.yaml, rbac.yaml]\ncommonAnnotations:\n  team: platform\nimages:\n  - name: busybox\n    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    );
    write(
        root,
        "base/workloads.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  schedule: '0 3 * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          initContainers: [{name: init, image: busybox}]\n          containers: [{name: job, image: 'ahuora/idaes:0.0.10'}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: web}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\nspec:\n  podSelector:\n    matchLabels: {app: web}\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels: {app: front}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers: [{name: agent, image: 'busybox:1.36'}]\n",
    );
    write(
        root,
        "base/rbac.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: agent\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n  - {kind: ServiceAccount, name: agent}\n  - {kind: ServiceAccount, name: other, namespace: elsewhere}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: agent-view\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n  - {kind: ServiceAccount, name: agent, namespace: default}\n",
    );
    write(
        root,
        "overlay/kustomization.yaml",
        "namespace: prod\nresources: [../base]\ncommonLabels:\n  env: prod\nlabels:\n  - pairs: {owner: ops}\n  - pairs: {tier: t1}\n    includeSelectors: true\nimages:\n  - name: ahuora/idaes\n    newName: registry.local:5000/ahuora/idaes\n    newTag: 0.0.11\n",
    );
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(root.join("overlay"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let theirs: Vec<Value> = relbot::source::yaml::parse_documents(&text)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect();
    let app: Application = serde_saphyr::from_str("name: x\npath: overlay\n").unwrap();
    let ours = source::render::render(root, &app, &offline());
    assert!(ours.problems.is_empty(), "{:?}", ours.problems);
    let key = |v: &Value| {
        format!(
            "{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["name"].as_str().unwrap()
        )
    };
    let theirs: BTreeMap<String, Value> = theirs.into_iter().map(|v| (key(&v), v)).collect();
    let ours: BTreeMap<String, Value> = ours
        .objects
        .into_iter()
        .map(|o| (key(&o.manifest.object), o.manifest.object))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (k, mine) in &ours {
        assert_eq!(mine, &theirs[k], "{k} differs from kubectl kustomize");
    }
}
