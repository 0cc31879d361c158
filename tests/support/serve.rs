//! A world for `relbot serve` end to end (the real binary): a git
//! repository whose applications hold one ConfigMap each, the configuration
//! pointing at it, a cluster namespace (the emulator with controllers, or the
//! cluster named by RELBOT_TEST_KUBECONFIG), and serve processes on free
//! loopback ports, killed on drop. A test file adds the methods only it
//! needs in its own `impl World` / `impl Server` (the same crate).
//!
//! Needs `mod git_support` (support/git.rs), `mod github_double` and
//! `mod registry_support` (support/registry.rs) next to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubesim::testing::TestCluster;
use relbot::server::webhook::github_signature;
use tempfile::TempDir;

use crate::git_support::{BareRepo, TestRepo};

/// The GitHub webhook secret every server of these tests is given.
pub const SECRET: &str = "serve-webhook-secret";
/// The registry webhook's token, likewise.
pub const REGISTRY_TOKEN: &str = "serve-registry-token";

/// ConfigMap `name` with `data.value`.
pub fn config_map_yaml(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// A GitHub push event for `after` touching `paths`.
pub fn push_body(before: &str, after: &str, paths: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": false, "deleted": false, "forced": false,
        "repository": {"full_name": "acme/cluster-config"},
        "commits": [{"id": after, "added": [], "removed": [], "modified": paths}],
    }))
    .unwrap()
}

/// The `x-hub-signature-256` of `body` with [`SECRET`].
pub fn sign(body: &[u8]) -> String {
    github_signature(SECRET.as_bytes(), body)
}

/// Deployment `web` of `docker.io/acme/web:1.0.0` (for `apps/web/`).
pub const WEB_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: { app: web }\n  template:\n    metadata:\n      labels: { app: web }\n    spec:\n      containers:\n        - name: web\n          image: docker.io/acme/web:1.0.0 # the web front end\n";
/// The ImagePolicy that bumps [`WEB_DEPLOYMENT`] within 1.x (for `policies/`).
pub const WEB_POLICY: &str = "apiVersion: relbot.dev/v1alpha1\nkind: ImagePolicy\nmetadata: { name: web }\nspec:\n  image: docker.io/acme/web\n  semver: \">=1.0.0 <2.0.0\"\n  files: [ \"apps/web/**/*.yaml\" ]\n  application: web\n";

/// The peers of a bump: a registry holding `acme/web` 1.0.0 and 1.1.0, and
/// a GitHub double with `repo`, whose `main` needs `ci/test` to pass.
pub async fn bump_peers(
    repo: &str,
) -> (
    crate::registry_support::RealRegistry,
    crate::github_double::GitHubDouble,
) {
    use crate::registry_support::{Auth, Media, RealRegistry};
    let registry = RealRegistry::start(Auth::Anonymous).await;
    registry
        .seed("acme/web", &["1.0.0", "1.1.0"], Media::Docker)
        .await;
    let gh = crate::github_double::GitHubDouble::start().await;
    gh.add_repo(repo, "main");
    gh.set_required_checks(repo, "main", &["ci/test"]);
    (registry, gh)
}

/// A repository, a configuration pointing at it, and a cluster namespace.
pub struct World {
    pub tc: TestCluster,
    pub bare: BareRepo,
    pub work: TestRepo,
    pub dir: TempDir,
    /// The applications, in the order given.
    pub apps: Vec<String>,
    /// Extra environment for every server (GitHub double URL and token…).
    pub env: Vec<(String, String)>,
    /// Extra arguments for every server.
    pub serve_args: Vec<String>,
}

impl World {
    /// `apps` applications, each with one ConfigMap `<app>-settings` (value
    /// "v1"), `extra` appended to relbot.yaml and `files` written to both
    /// the repository and the configuration directory.
    pub async fn with(
        test: &str,
        apps: &[impl AsRef<str>],
        extra: &str,
        files: &[(&str, &str)],
    ) -> World {
        // Controllers mode: Deployments become ready, so health gates pass.
        let tc = TestCluster::acquire_with(
            test,
            kubesim::SimOptions {
                controllers: Some(kubesim::ControllerOptions::default()),
                ..Default::default()
            },
        )
        .await;
        let bare = BareRepo::new("cluster-config");
        let work = TestRepo::clone_from(&bare.url());
        let ns = tc.namespace().to_string();
        let mut config = format!(
            "repo:\n  url: {}\n  branch: main\n  interval: 1h\ngithub:\n  repository: acme/cluster-config\nstatus:\n  namespace: {ns}\napplications:\n",
            bare.url()
        );
        let apps: Vec<String> = apps.iter().map(|a| a.as_ref().to_string()).collect();
        for app in &apps {
            config.push_str(&format!(
                "  - name: {app}\n    path: apps/{app}\n    namespace: {ns}\n    sync: {{ prune: true, selfHeal: true, healthTimeout: 15s }}\n"
            ));
            work.write(
                &format!("apps/{app}/settings.yaml"),
                &config_map_yaml(&format!("{app}-settings"), "v1"),
            );
        }
        config.push_str(extra);
        let dir = TempDir::new().unwrap();
        for (path, text) in files {
            work.write(path, text);
            let copy = dir.path().join(path);
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::write(copy, text).unwrap();
        }
        work.write("relbot.yaml", &config);
        work.commit("initial");
        work.git(&["push", "-q", "origin", "main"]);
        std::fs::write(dir.path().join("relbot.yaml"), &config).unwrap();
        World {
            tc,
            bare,
            work,
            dir,
            apps,
            env: Vec::new(),
            serve_args: Vec::new(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relbot.yaml")
    }
}

/// One `relbot serve` process; killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    /// Its pod name (`POD_NAME`), which is also its Lease identity.
    pub name: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
}

impl Server {
    /// `relbot serve` for `world` on `port` as pod `pod`, its cache in
    /// `cache_dir`, its log in `<pod>.log` next to the configuration.
    pub fn start(world: &World, port: u16, pod: &str, cache_dir: &Path) -> Server {
        let log = world.dir.path().join(format!("{pod}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_relbot"))
            .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(world.config_path())
            .arg("--kubeconfig")
            .arg(world.tc.kubeconfig_path())
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(&world.serve_args)
            .env("RELBOT_GITHUB_WEBHOOK_SECRET", SECRET)
            .env("RELBOT_REGISTRY_WEBHOOK_TOKEN", REGISTRY_TOKEN)
            .env("RELBOT_LOG", "info,relbot=debug")
            .env("NO_COLOR", "1")
            .env("POD_NAME", pod)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start relbot serve");
        relbot::tls::init();
        Server {
            child: Some(child),
            port,
            name: pod.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log under a line naming the server, for messages that show
    /// several servers' logs.
    pub fn named_log(&self) -> String {
        format!("== {} ==\n{}", self.name, self.log())
    }

    /// Status and body of a GET, or None when the server does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = self.http.get(self.url(path)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = self.get("/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "relbot serve {} not ready within 60 s; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A crash: no SIGTERM, nothing released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
