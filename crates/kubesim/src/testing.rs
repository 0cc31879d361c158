//! The one place tests get a cluster from.
//!
//! By default [`TestCluster::acquire`] starts an emulator. When the
//! `RELBOT_TEST_KUBECONFIG` environment variable names a kubeconfig, it uses
//! that cluster instead. Either way the test gets a fresh namespace
//! `relbot-test-<name>-<random>`, created up front and deleted at
//! [`TestCluster::cleanup`] (or on drop), so the same assertions hold in both
//! modes. Tests that need the emulator's controllers mode, fault injection or
//! request log call [`TestCluster::require_emulator`], which skips them (with
//! a message) on a real cluster.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::{KubeSim, SimHandle, SimOptions};

/// The environment variable that switches tests to a real cluster.
pub const KUBECONFIG_ENV: &str = "RELBOT_TEST_KUBECONFIG";

/// A cluster and a namespace for one test.
pub struct TestCluster {
    client: Client,
    namespace: String,
    kubeconfig: PathBuf,
    sim: Option<SimHandle>,
    /// The kubeconfig written for the emulator (removed on drop).
    owned_kubeconfig: bool,
    cleaned: bool,
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    s.chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| {
            let n = rng.gen_range(0..36u8);
            (if n < 10 { b'0' + n } else { b'a' + n - 10 }) as char
        })
        .collect()
}

async fn client_from(path: &Path) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| format!("client for {}: {e}", path.display()))
}

impl TestCluster {
    /// An emulator (default) or the cluster named by `RELBOT_TEST_KUBECONFIG`,
    /// with a fresh namespace for `test_name`.
    pub async fn acquire(test_name: &str) -> Self {
        Self::acquire_with(test_name, SimOptions::default()).await
    }

    /// Like [`TestCluster::acquire`]; `opts` only matter in emulator mode
    /// (e.g. controllers mode). Panics when the cluster cannot be reached.
    pub async fn acquire_with(test_name: &str, opts: SimOptions) -> Self {
        match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Self::external(Path::new(&path), test_name)
                .await
                .unwrap_or_else(|e| panic!("{KUBECONFIG_ENV}: {e}")),
            None => Self::emulator(test_name, opts)
                .await
                .unwrap_or_else(|e| panic!("kubesim: {e}")),
        }
    }

    /// Starts an emulator and prepares the test namespace in it.
    pub async fn emulator(test_name: &str, opts: SimOptions) -> Result<Self, String> {
        let sim = KubeSim::start(opts).await.map_err(|e| e.to_string())?;
        let path = std::env::temp_dir().join(format!(
            "kubesim-{}-{}-{}.kubeconfig",
            std::process::id(),
            sim.port(),
            random_suffix()
        ));
        sim.write_kubeconfig(&path).map_err(|e| e.to_string())?;
        let client = client_from(&path).await?;
        let mut tc = Self {
            client,
            namespace: String::new(),
            kubeconfig: path,
            sim: Some(sim),
            owned_kubeconfig: true,
            cleaned: false,
        };
        tc.create_namespace(test_name).await?;
        Ok(tc)
    }

    /// Uses the cluster of an existing kubeconfig (what `RELBOT_TEST_KUBECONFIG` selects).
    pub async fn external(kubeconfig: &Path, test_name: &str) -> Result<Self, String> {
        let client = client_from(kubeconfig).await?;
        let mut tc = Self {
            client,
            namespace: String::new(),
            kubeconfig: kubeconfig.to_path_buf(),
            sim: None,
            owned_kubeconfig: false,
            cleaned: false,
        };
        tc.create_namespace(test_name).await?;
        Ok(tc)
    }

    async fn create_namespace(&mut self, test_name: &str) -> Result<(), String> {
        let name = format!("relbot-test-{}-{}", sanitize(test_name), random_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app.kubernetes.io/created-by": "relbot-tests"}}
        }))
        .map_err(|e| e.to_string())?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| format!("creating namespace {name}: {e}"))?;
        self.namespace = name;
        Ok(())
    }

    /// Whether the server knows the preStop `sleep` lifecycle action (on by
    /// default from Kubernetes 1.30, unknown to 1.28), found out as relbot
    /// would: a server-side apply dry-run of a Deployment that uses it.
    pub async fn knows_prestop_sleep(&self) -> bool {
        use k8s_openapi::api::apps::v1::Deployment;
        use kube::api::{Patch, PatchParams};
        let probe = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "prestop-sleep-probe"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "c", "image": "nginx",
                     "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}}}});
        let params = PatchParams::apply("relbot-test-probe").dry_run();
        Api::<Deployment>::namespaced(self.client.clone(), &self.namespace)
            .patch("prestop-sleep-probe", &params, &Patch::Apply(&probe))
            .await
            .is_ok()
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The test's own namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig on disk for this cluster (for spawning a `relbot` binary).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn is_emulator(&self) -> bool {
        self.sim.is_some()
    }

    /// Whether the cluster is kubesim, in this process or another one
    /// reached through `RELBOT_TEST_KUBECONFIG` (it says so in `/version`).
    pub async fn is_kubesim(&self) -> bool {
        self.sim.is_some()
            || self
                .client
                .apiserver_version()
                .await
                .is_ok_and(|v| v.git_version.ends_with("-kubesim"))
    }

    /// The emulator, in emulator mode.
    pub fn sim(&self) -> Option<&SimHandle> {
        self.sim.as_ref()
    }

    /// The emulator, or `None` after printing
    /// `skipped: needs the emulator's <why> (real-cluster mode)`.
    pub fn require_emulator(&self, why: &str) -> Option<&SimHandle> {
        if self.sim.is_none() {
            println!("skipped: needs the emulator's {why} (real-cluster mode)");
        }
        self.sim.as_ref()
    }

    /// Deletes the test namespace (real cluster) or stops the emulator.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if self.sim.is_none() {
            let _ = Api::<Namespace>::all(self.client.clone())
                .delete(&self.namespace, &DeleteParams::background())
                .await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.owned_kubeconfig {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
        if self.cleaned || self.sim.is_some() {
            // The emulator's namespaces end with it.
            return;
        }
        // The test's runtime may be blocked in this drop: use a fresh client on a fresh runtime.
        let (path, ns) = (self.kubeconfig.clone(), self.namespace.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = client_from(&path).await {
                    let _ = Api::<Namespace>::all(client)
                        .delete(&ns, &DeleteParams::background())
                        .await;
                }
            });
        })
        .join();
    }
}
