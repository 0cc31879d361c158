//! `deploy/` renders, validates and is accepted by the API-server emulator,
//! and holds the operational promises the docs make about it (non-root,
//! read-only root filesystem, probes, drain timing, Secrets by name only).
//!
//! Rendering is checked twice when `kubectl` is on PATH: kubectl's kustomize
//! and relbot's own renderer must produce the same objects, so
//! `kubectl apply -k deploy/` installs exactly what relbot validates.

mod ship_support;

use std::collections::BTreeMap;
use std::process::Command;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use relbot::config::Config;
use relbot::source::kustomize::KustomizeTool;
use relbot::source::render::RenderOptions;
use serde_json::Value;
use ship_support::{key_of, repo_root};

/// A configuration that treats `deploy/` as one application.
fn deploy_config() -> Config {
    serde_saphyr::from_str(
        "applications:\n  - name: relbot\n    path: deploy\n    namespace: relbot\n",
    )
    .expect("a valid configuration")
}

/// `deploy/` through relbot's own renderer (no kustomize binary), validated.
fn render_with_relbot() -> Vec<Value> {
    let options = RenderOptions {
        kustomize: KustomizeTool::Disabled,
    };
    let apps = relbot::source::load_desired_with(&repo_root(), &deploy_config(), &options)
        .unwrap_or_else(|e| panic!("deploy/ does not validate:\n{e}"));
    assert_eq!(apps.len(), 1);
    let errors: Vec<String> = apps[0]
        .notes
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    assert!(errors.is_empty(), "validation errors: {errors:#?}");
    apps[0].manifests.iter().map(|m| m.object.clone()).collect()
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn render_with_kubectl() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy"])
        .current_dir(repo_root())
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&out.stdout))
        .expect("kubectl kustomize prints YAML documents")
}

fn by_key(objects: &[Value]) -> BTreeMap<String, &Value> {
    objects.iter().map(|o| (key_of(o), o)).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
}

#[test]
fn ship_deploy_renders_the_same_with_kubectl_and_relbot() {
    let ours = render_with_relbot();
    assert!(
        ours.len() >= 7,
        "deploy/ rendered only {} objects",
        ours.len()
    );
    if !kubectl_available() {
        eprintln!("kubectl not on PATH: checked relbot's renderer only");
        return;
    }
    let theirs = render_with_kubectl();
    let (ours, theirs) = (by_key(&ours), by_key(&theirs));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "kubectl kustomize and relbot render different objects"
    );
    for (key, object) in &theirs {
        assert_eq!(
            ours[key]["metadata"]["labels"], object["metadata"]["labels"],
            "{key}: labels differ between renderers"
        );
        assert_eq!(
            ours[key].get("spec"),
            object.get("spec"),
            "{key}: spec differs between renderers"
        );
    }
}

#[test]
fn ship_deploy_deployment_is_hardened_and_drains_in_time() {
    let objects = render_with_relbot();
    let deployment = find(&objects, "Deployment", "relbot");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "relbot");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // relbot drains within 25 s of SIGTERM (server::shutdown::DRAIN_DEADLINE);
    // the kubelet sends SIGTERM only after preStop, and SIGKILL at the grace
    // period: preStop + drain must fit inside it.
    const DRAIN_SECONDS: i64 = 25;
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .expect("a preStop sleep");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        pre_stop + DRAIN_SECONDS <= grace,
        "preStop {pre_stop}s + drain {DRAIN_SECONDS}s exceeds terminationGracePeriodSeconds {grace}s"
    );

    // The probes and the Service name a port the container declares.
    let ports: Vec<&str> = container["ports"]
        .as_array()
        .expect("container ports")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(ports.contains(&"http"));
    let service = find(&objects, "Service", "relbot");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let selector = service["spec"]["selector"].as_object().expect("a selector");
    for (label, value) in selector {
        assert_eq!(
            &deployment["spec"]["template"]["metadata"]["labels"][label], value,
            "the Service selects {label}={value}, which the pods do not carry"
        );
    }
}

#[test]
fn ship_deploy_refers_to_secrets_by_name_only() {
    let objects = render_with_relbot();
    assert!(
        objects.iter().all(|o| o["kind"] != "Secret"),
        "deploy/ must not contain Secret objects; the operator creates them"
    );
    let text = serde_json::to_string(&objects).expect("JSON");
    for name in ["relbot-github", "relbot-registry"] {
        assert!(
            text.contains(name),
            "the Deployment does not refer to Secret {name}"
        );
    }
    // The keys docs/operations.md tells people to create.
    let deployment = find(&objects, "Deployment", "relbot");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    let secret_keys: Vec<(String, String)> = env
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"].as_object())
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for expected in [
        ("relbot-github", "token"),
        ("relbot-github", "webhook-secret"),
        ("relbot-registry", "webhook-token"),
        ("relbot-notify", "url"),
    ] {
        assert!(
            secret_keys
                .iter()
                .any(|(n, k)| n == expected.0 && k == expected.1),
            "no env var from Secret {} key {}",
            expected.0,
            expected.1
        );
    }
}

#[test]
fn ship_deploy_ingress_exposes_only_the_webhooks() {
    let objects = render_with_relbot();
    let ingress = find(&objects, "Ingress", "relbot-webhooks");
    assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
    let mut paths = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().expect("rules") {
        paths.extend(rule["http"]["paths"].as_array().expect("paths").iter());
    }
    assert!(!paths.is_empty());
    for path in paths {
        assert_eq!(path["path"], "/webhooks", "only /webhooks may be public");
        assert_eq!(path["backend"]["service"]["name"], "relbot");
    }
}

/// Every object is accepted by the API-server emulator with a strict
/// server-side dry-run apply, in the order relbot would apply them.
#[tokio::test]
async fn ship_deploy_is_accepted_by_the_emulator() {
    let objects = render_with_relbot();
    let sim = kubesim::KubeSim::start(kubesim::SimOptions::default())
        .await
        .expect("start the emulator");
    let client = sim.client();
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    // Namespaces for real first (as kubectl applies them first): a dry-run
    // of a namespaced object needs its namespace to exist.
    let params = PatchParams::apply("relbot").force();
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
            .expect("namespaces")
            .0,
    );
    for namespace in objects.iter().filter(|o| o["kind"] == "Namespace") {
        let name = namespace["metadata"]["name"].as_str().expect("name");
        namespaces
            .patch(name, &params, &Patch::Apply(namespace))
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }
    // Every namespace deploy/ writes into is created by deploy/ itself (or
    // always exists), so `kubectl apply -k deploy/` works on a fresh cluster.
    for object in &objects {
        if let Some(ns) = object["metadata"]["namespace"].as_str() {
            let created = objects
                .iter()
                .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == ns);
            assert!(
                created || ns == "kube-system" || ns == "default",
                "{} is in namespace {ns}, which deploy/ does not create",
                key_of(object)
            );
        }
    }

    let dry_run = PatchParams::apply("relbot")
        .force()
        .dry_run()
        .validation_strict();
    let mut problems = Vec::new();
    for object in &objects {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = object["kind"].as_str().expect("kind");
        let Some((resource, caps)) =
            discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
        else {
            problems.push(format!(
                "{}: the emulator does not serve {api_version} {kind}",
                key_of(object)
            ));
            continue;
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object["metadata"]["namespace"].as_str().unwrap_or("relbot"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name = object["metadata"]["name"].as_str().expect("name");
        if let Err(e) = api.patch(name, &dry_run, &Patch::Apply(object)).await {
            problems.push(format!("{}: {e}", key_of(object)));
        }
    }
    assert!(
        problems.is_empty(),
        "rejected by the emulator:\n{}",
        problems.join("\n")
    );
    sim.shutdown();
}

/// `relbot sync --dry-run` of deploy/ (as one application) against the
/// emulator: planned against the server, no problems, changes found.
#[test]
fn ship_deploy_dry_run_sync_against_the_emulator_has_no_errors() {
    let sim = ship_support::start_k3s_like();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let config = dir.path().join("relbot.yaml");
    std::fs::write(
        &config,
        "applications:\n  - name: relbot\n    path: deploy\n    namespace: relbot\n",
    )
    .expect("config");
    sim.clear_request_log(); // the CRDs K3s comes with are not relbot's writes
    let out = Command::new(ship_support::relbot_bin())
        .args(["sync", "--dry-run", "--output", "json", "--config"])
        .arg(&config)
        .arg("--source")
        .arg(repo_root())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("run relbot sync --dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 (changes found, no errors):\n{stdout}\n{stderr}"
    );
    let plan: Value = serde_json::from_str(&stdout).expect("JSON plan");
    let text = plan.to_string();
    assert!(
        text.contains("relbot-inventory"),
        "the plan covers deploy/: {text}"
    );
    let writes = sim.request_log().iter().filter(|r| r.is_write()).count();
    assert_eq!(writes, 0, "a dry-run wrote to the cluster");
    sim.shutdown();
}

/// Mounts of the Deployment's container: volume name → mount path.
fn mounts(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["mountPath"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Writes a ConfigMap's keys as files into `dir`, as a volume mount would.
fn write_configmap(configmap: &Value, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("mount dir");
    for (key, text) in configmap["data"].as_object().expect("data") {
        std::fs::write(dir.join(key), text.as_str().expect("text")).expect("write key");
    }
}

/// `relbot serve` in the Deployment reads the configuration from the
/// ConfigMaps deploy/ ships, mounted where `--config` and `policies:` point,
/// and that configuration loads without problems; its policies are the
/// repository's own `policies/`, so the two cannot drift apart.
#[test]
fn ship_deploy_serve_reads_a_valid_configuration_from_its_configmaps() {
    let objects = render_with_relbot();
    let deployment = find(&objects, "Deployment", "relbot");
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_arg = args
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| args.get(i + 1))
        .expect("serve is given --config");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let configmap_of = |volume: &str| -> String {
        volumes
            .iter()
            .find(|v| v["name"] == volume)
            .and_then(|v| v["configMap"]["name"].as_str())
            .unwrap_or_else(|| panic!("volume {volume} is not a ConfigMap"))
            .to_string()
    };
    let mounts = mounts(deployment);

    // Lay the pod's filesystem out under a temp root and load from there.
    let root = tempfile::tempdir().expect("tempdir");
    for (volume, path) in &mounts {
        if !["config", "policies"].contains(&volume.as_str()) {
            continue;
        }
        let configmap = find(&objects, "ConfigMap", &configmap_of(volume));
        write_configmap(configmap, &root.path().join(path.trim_start_matches('/')));
    }
    let config_path = root.path().join(config_arg.trim_start_matches('/'));
    assert!(
        config_path.is_file(),
        "--config {config_arg} is not a key of a mounted ConfigMap (mounts: {mounts:?})"
    );
    let loaded = relbot::config::load(&config_path)
        .unwrap_or_else(|e| panic!("the shipped configuration does not load:\n{e}"));
    assert!(loaded.config.repo.is_some(), "serve needs `repo:`");
    assert!(!loaded.config.applications.is_empty());

    let repository = relbot::config::load(&repo_root().join("manifests-sample/relbot.yaml"))
        .expect("the sample configuration loads");
    let by_name = |policies: &[relbot::config::LoadedPolicy]| {
        policies
            .iter()
            .map(|p| (p.policy.metadata.name.clone(), p.policy.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        by_name(&loaded.policies),
        by_name(&repository.policies),
        "deploy/config.yaml's policies differ from policies/"
    );
    assert_eq!(
        loaded.config.applications, repository.config.applications,
        "deploy/config.yaml's applications differ from manifests-sample/relbot.yaml"
    );
}
