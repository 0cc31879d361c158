//! A real Kubernetes control plane on loopback, for relbot's tests.
//!
//! Follows controller-runtime's envtest convention: the binaries come from the
//! folder named by `KUBEBUILDER_ASSETS` (`kube-apiserver`,
//! `kube-controller-manager`, and `etcd` there or on `PATH`). [`ControlPlane::start`]
//! runs etcd, kube-apiserver (RBAC on, static tokens for an admin and an
//! unprivileged user) and kube-controller-manager on free ports, with data and
//! certificates in a temporary folder, plus a stand-in for the kubelet that
//! marks Pods Running and Ready (there are no nodes) so rollouts finish as on
//! K3s. Dropping the handle stops every process and removes the folder.

mod certs;
mod process;
pub mod standin;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use process::Child;

/// The token of the admin identity (`system:masters`).
pub const ADMIN_TOKEN: &str = "relbot-test-admin-token";
/// The token of an identity with no roles at all (user `tester`, group `relbot-testers`).
pub const UNPRIVILEGED_TOKEN: &str = "relbot-test-unprivileged-token";
/// The unprivileged identity's user name, for tests that grant it roles.
pub const UNPRIVILEGED_USER: &str = "tester";

/// Where envtest looks when `KUBEBUILDER_ASSETS` is unset.
pub const DEFAULT_ASSETS_ROOT: &str = "/usr/local/kubebuilder";

/// The folders holding a control plane's binaries: every entry of
/// `KUBEBUILDER_ASSETS` (a `:`-separated list), else `/usr/local/kubebuilder/bin`,
/// else each `/usr/local/kubebuilder/<version>/bin`, in version order.
pub fn asset_folders() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list).collect();
    }
    let root = Path::new(DEFAULT_ASSETS_ROOT);
    if root.join("bin/kube-apiserver").is_file() {
        return vec![root.join("bin")];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("kube-apiserver").is_file())
        .collect();
    found.sort();
    found
}

/// A running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    port: u16,
    // Stopped in reverse order of start by their Drop (controller-manager first).
    controller_manager: Option<Child>,
    apiserver: Option<Child>,
    etcd: Option<Child>,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn binary(assets: &Path, name: &str) -> Result<PathBuf, String> {
    let local = assets.join(name);
    if local.is_file() {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is neither in {} nor on PATH", assets.display()))
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{what} not ready after {}s", timeout.as_secs()))
}

/// A plain HTTP GET on loopback answered 200 (etcd's /health).
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager from `assets`,
    /// waiting until the API server answers `/readyz`.
    pub fn start(assets: &Path) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "relbot-controlplane-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cp = ControlPlane {
            dir: dir.clone(),
            port: 0,
            controller_manager: None,
            apiserver: None,
            etcd: None,
        };
        certs::generate(&dir)?;
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n\
                 {UNPRIVILEGED_TOKEN},{UNPRIVILEGED_USER},tester-uid,\"relbot-testers\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;

        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        cp.etcd = Some(Child::spawn(
            &binary(assets, "etcd")?,
            &dir,
            "etcd",
            &[
                "--data-dir",
                "etcd-data",
                "--name",
                "default",
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("default={peer_url}"),
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )?);
        wait_until("etcd", Duration::from_secs(30), || {
            http_ok(etcd_port, "/health")
        })?;

        cp.port = free_port()?;
        let port = cp.port.to_string();
        cp.apiserver = Some(Child::spawn(
            &binary(assets, "kube-apiserver")?,
            &dir,
            "kube-apiserver",
            &[
                "--etcd-servers",
                &etcd_url,
                "--bind-address=127.0.0.1",
                "--secure-port",
                &port,
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                "--service-cluster-ip-range=10.43.0.0/16",
                "--tls-cert-file=serving.crt",
                "--tls-private-key-file=serving.key",
                "--client-ca-file=ca.crt",
                "--token-auth-file=tokens.csv",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file=sa.pub",
                "--service-account-signing-key-file=sa.key",
                "--cert-dir=apiserver-certs",
                "--requestheader-client-ca-file=front-proxy-ca.crt",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--proxy-client-cert-file=front-proxy-client.crt",
                "--proxy-client-key-file=front-proxy-client.key",
            ],
        )?);
        cp.write_kubeconfig(&dir.join("kubeconfig"), ADMIN_TOKEN)?;
        cp.write_kubeconfig(&dir.join("unprivileged.kubeconfig"), UNPRIVILEGED_TOKEN)?;
        let readyz = cp.readyz_probe();
        wait_until("kube-apiserver", Duration::from_secs(90), readyz)?;

        let cm_port = free_port()?.to_string();
        cp.controller_manager = Some(Child::spawn(
            &binary(assets, "kube-controller-manager")?,
            &dir,
            "kube-controller-manager",
            &[
                "--kubeconfig=kubeconfig",
                "--authentication-kubeconfig=kubeconfig",
                "--authorization-kubeconfig=kubeconfig",
                "--bind-address=127.0.0.1",
                "--secure-port",
                &cm_port,
                "--service-account-private-key-file=sa.key",
                "--root-ca-file=ca.crt",
                "--cluster-signing-cert-file=ca.crt",
                "--cluster-signing-key-file=ca.key",
                "--use-service-account-credentials",
                // No metrics API here: the stand-in reports for autoscalers.
                "--controllers=*,-horizontal-pod-autoscaler-controller",
                "--leader-elect=false",
                "--service-cluster-ip-range=10.43.0.0/16",
            ],
        )?);
        Ok(cp)
    }

    /// A probe of `/readyz` with the admin token through curl-free HTTPS:
    /// kube's client needs a runtime, so the probe runs one of its own.
    fn readyz_probe(&self) -> impl FnMut() -> bool + use<> {
        let path = self.kubeconfig();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
        move || {
            let Some(rt) = rt.as_ref() else { return false };
            rt.block_on(async {
                let Ok(client) = client_from(&path).await else {
                    return false;
                };
                let req = http::Request::get("/readyz").body(Vec::new());
                match req {
                    Ok(req) => client
                        .request_text(req)
                        .await
                        .is_ok_and(|t| t.trim() == "ok"),
                    Err(_) => false,
                }
            })
        }
    }

    fn write_kubeconfig(&self, path: &Path, token: &str) -> Result<(), String> {
        let ca = std::fs::read_to_string(self.dir.join("ca.crt")).map_err(|e| e.to_string())?;
        let cfg = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "controlplane", "cluster": {
                "server": self.url(),
                "certificate-authority-data": BASE64.encode(ca.as_bytes()),
            }}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "controlplane", "context": {"cluster": "controlplane", "user": "user"}}],
            "current-context": "controlplane",
        });
        // Written whole then renamed, so a waiting script never reads half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, cfg.to_string()).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kubeconfig for the identity with no roles.
    pub fn unprivileged_kubeconfig(&self) -> PathBuf {
        self.dir.join("unprivileged.kubeconfig")
    }

    /// Why the control plane stopped working, when one of its processes has exited.
    pub fn exited(&mut self) -> Option<String> {
        [
            &mut self.etcd,
            &mut self.apiserver,
            &mut self.controller_manager,
        ]
        .into_iter()
        .flatten()
        .find_map(Child::exited)
    }

    /// The process ids of kube-apiserver and etcd (for a benchmark that
    /// reads what they spent from `/proc`).
    pub fn server_process_ids(&self) -> Vec<(&'static str, u32)> {
        [("kube-apiserver", &self.apiserver), ("etcd", &self.etcd)]
            .into_iter()
            .filter_map(|(name, child)| child.as_ref().map(|c| (name, c.id())))
            .collect()
    }

    /// The folder with data, certificates and each process's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops every process (controller-manager, apiserver, etcd) and removes the folder.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.controller_manager.take());
        drop(self.apiserver.take());
        drop(self.etcd.take());
        if std::env::var_os("RELBOT_KEEP_CONTROLPLANE").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| format!("client for {}: {e}", path.display()))
}
