//! Many clusters: an application that names a destination (a kubeconfig in
//! a Secret of relbot's status namespace) is synced into that cluster by
//! the real `relbot` binary, its health read there and its prunes done
//! there, while its status record stays on relbot's own ("home") cluster.
//!
//! Home is the emulator, or the cluster RELBOT_TEST_KUBECONFIG names. The
//! destination is a second control plane: on a real home, one started here
//! from the same version's binaries (KUBEBUILDER_ASSETS or
//! /usr/local/kubebuilder, as scripts/test finds them); on the emulator, a
//! second emulator.

use std::path::Path;
use std::time::Instant;

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesim::testing::TestCluster;
use serde_json::{Value, json};
use tempfile::TempDir;

const TOKEN_MARK: &str = "destination-token-never-shown";

/// The destination cluster and whatever keeps it running.
struct Remote {
    tc: TestCluster,
    /// The kubeconfig text relbot is given in the Secret.
    kubeconfig: String,
    _plane: Option<controlplane::ControlPlane>,
    _standin: Option<AbortOnDrop>,
}

/// Stops the stand-in kubelet with the test.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A second control plane of the home cluster's version, or an emulator.
async fn remote(home: &TestCluster) -> Remote {
    let opts = || kubesim::SimOptions {
        controllers: Some(kubesim::ControllerOptions::default()),
        ..Default::default()
    };
    if !home.is_kubesim().await {
        let version = home
            .client()
            .apiserver_version()
            .await
            .expect("home version")
            .git_version;
        let folders = controlplane::asset_folders();
        let assets = folders
            .iter()
            .find(|f| f.to_string_lossy().contains(&version))
            .or(folders.first())
            .cloned();
        if let Some(assets) = assets {
            let plane =
                tokio::task::spawn_blocking(move || controlplane::ControlPlane::start(&assets))
                    .await
                    .unwrap()
                    .expect("a second control plane");
            let tc = TestCluster::external(&plane.kubeconfig(), "destination")
                .await
                .expect("the second control plane");
            // No nodes: Pods become Running and Ready through the stand-in
            // kubelet, as `controlplane up` runs it for the first one.
            let standin = tokio::spawn(controlplane::standin::run(tc.client(), Vec::new()));
            let kubeconfig = std::fs::read_to_string(plane.kubeconfig()).unwrap();
            return Remote {
                tc,
                kubeconfig,
                _plane: Some(plane),
                _standin: Some(AbortOnDrop(standin)),
            };
        }
        println!(
            "no control plane binaries for a second real cluster: the destination is an emulator"
        );
    }
    let tc = TestCluster::emulator("destination", opts())
        .await
        .expect("a second emulator");
    let kubeconfig = std::fs::read_to_string(tc.kubeconfig_path()).unwrap();
    Remote {
        tc,
        kubeconfig,
        _plane: None,
        _standin: None,
    }
}

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{ app: {name} }}\n  template:\n    metadata:\n      labels: {{ app: {name} }}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n"
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `relbot ARGS --source DIR --kubeconfig HOME`: exit code and all output.
fn relbot(home: &TestCluster, source: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(args)
        .arg("--source")
        .arg(source)
        .arg("--kubeconfig")
        .arg(home.kubeconfig_path())
        .arg("--no-progress")
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run relbot");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains(TOKEN_MARK),
        "a secret in the output:\n{text}"
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Sets the Secret `prod-eu` (key `value`) on home to `kubeconfig`.
async fn put_secret(home: &TestCluster, kubeconfig: &str) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "prod-eu", "namespace": home.namespace()},
        "data": {"value": base64::engine::general_purpose::STANDARD.encode(kubeconfig)}});
    Api::<Secret>::namespaced(home.client(), home.namespace())
        .patch(
            "prod-eu",
            &PatchParams::apply("relbot-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("the destination's Secret");
}

async fn config_map_names(tc: &TestCluster, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = Api::<ConfigMap>::namespaced(tc.client(), namespace)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    names
}

/// A kubeconfig for a port nothing listens on, carrying a token that must
/// never be printed.
fn refused_kubeconfig() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {TOKEN_MARK}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_with_a_destination_is_synced_there_and_recorded_at_home() {
    relbot::tls::init();
    let started = Instant::now();
    let home = TestCluster::acquire_with(
        "dest-home",
        kubesim::SimOptions {
            controllers: Some(kubesim::ControllerOptions::default()),
            ..Default::default()
        },
    )
    .await;
    let remote = remote(&home).await;
    let ns = home.namespace().to_string();
    println!(
        "home and destination ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Both applications use the same namespace name: on the destination
    // relbot creates it (createNamespace), so a stray write home would show.
    let dir = TempDir::new().unwrap();
    let source = dir.path();
    write(
        source,
        "relbot.yaml",
        &format!(
            "status:\n  namespace: {ns}\napplications:\n  - name: home-app\n    path: apps/home\n    namespace: {ns}\n    sync: {{ healthTimeout: 30s }}\n  - name: remote-app\n    path: apps/remote\n    namespace: {ns}\n    sync: {{ createNamespace: true, healthTimeout: 30s }}\n    destination:\n      kubeConfig:\n        secretRef: {{ name: prod-eu, key: value }}\n"
        ),
    );
    write(
        source,
        "apps/home/settings.yaml",
        &config_map("home-settings", "h1"),
    );
    write(
        source,
        "apps/remote/settings.yaml",
        &config_map("remote-settings", "r1"),
    );
    write(
        source,
        "apps/remote/extra.yaml",
        &config_map("remote-extra", "x"),
    );
    write(source, "apps/remote/web.yaml", &deployment("remote-web"));

    // 1. The destination cannot be reached: only its application fails,
    //    in plain words; the other one syncs.
    put_secret(&home, &refused_kubeconfig()).await;
    let (code, out) = relbot(&home, source, &["sync"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot reach cluster prod-eu: "), "{out}");
    assert_eq!(
        config_map_names(&home, &ns).await,
        ["home-settings", "relbot-status-home-app"],
        "{out}"
    );

    // 2. The Secret now holds the real destination: a dry-run plans it
    //    there and writes nowhere.
    put_secret(&home, &remote.kubeconfig).await;
    let (code, out) = relbot(&home, source, &["sync", "--dry-run"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("remote-settings"), "{out}");
    assert!(config_map_names(&remote.tc, &ns).await.is_empty());

    // 3. The sync: home-app at home, remote-app on the destination and not
    //    at home; its Deployment's health read there (it exists nowhere else).
    let (code, out) = relbot(&home, source, &["sync", "--wait"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        config_map_names(&remote.tc, &ns).await,
        ["remote-extra", "remote-settings"],
        "{out}"
    );
    assert!(
        Api::<Deployment>::namespaced(remote.tc.client(), &ns)
            .get_opt("remote-web")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        config_map_names(&home, &ns).await,
        [
            "home-settings",
            "relbot-status-home-app",
            "relbot-status-remote-app"
        ],
        "{out}"
    );
    assert!(
        Api::<Deployment>::namespaced(home.client(), &ns)
            .get_opt("remote-web")
            .await
            .unwrap()
            .is_none()
    );
    let record = Api::<ConfigMap>::namespaced(home.client(), &ns)
        .get("relbot-status-remote-app")
        .await
        .unwrap();
    let result: Value =
        serde_json::from_str(&record.data.unwrap()["result.json"]).expect("stored result");
    assert_eq!(result["health"], "healthy", "{result:#}");
    let server = result["server"].as_str().unwrap();
    assert!(remote.kubeconfig.contains(server), "{server}");

    // 4. Prune on the destination: remote-extra left git.
    std::fs::remove_file(source.join("apps/remote/extra.yaml")).unwrap();
    let (code, out) = relbot(&home, source, &["sync"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        config_map_names(&remote.tc, &ns).await,
        ["remote-settings"],
        "{out}"
    );

    // 5. In sync everywhere.
    let (code, out) = relbot(&home, source, &["diff"]);
    assert_eq!(code, 0, "{out}");

    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    remote.tc.cleanup().await;
    home.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_client_is_rebuilt_when_its_secret_changes() {
    relbot::tls::init();
    let home = TestCluster::acquire("dest-cache").await;
    let destinations = relbot::cluster::destination::Destinations::new(
        relbot::cluster::client::ReadOnlyCluster::from_client(home.client(), "home"),
    );
    let at = relbot::cluster::destination::SecretKey {
        namespace: home.namespace().to_string(),
        name: "prod-eu".into(),
        key: "value".into(),
    };
    let missing = destinations.client(&at).await.unwrap_err().to_string();
    assert!(
        missing.starts_with(&format!(
            "cannot reach cluster prod-eu: Secret {}/prod-eu does not exist",
            home.namespace()
        )),
        "{missing}"
    );
    let first = refused_kubeconfig();
    put_secret(&home, &first).await;
    let client = destinations.client(&at).await.unwrap();
    assert!(first.contains(client.server()), "{}", client.server());
    // Unchanged Secret: the same client (same server) without a rebuild.
    assert_eq!(
        destinations.client(&at).await.unwrap().server(),
        client.server()
    );
    // A new kubeconfig in the Secret: the next run's client follows it.
    let second = refused_kubeconfig();
    put_secret(&home, &second).await;
    let rebuilt = destinations.client(&at).await.unwrap();
    assert!(second.contains(rebuilt.server()), "{}", rebuilt.server());
    assert_ne!(rebuilt.server(), client.server());
    home.cleanup().await;
}
