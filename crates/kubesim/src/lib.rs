//! kubesim: a Kubernetes API server emulator for relbot's tests and benchmarks (dev-only).
//!
//! It serves the Kubernetes REST API over plain HTTP on 127.0.0.1, so the real
//! `kube::Client` reaches it through an ordinary kubeconfig, as it would reach
//! K3s. See `README.md` for the fidelity choices and known differences.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kubesim::{KubeSim, SimOptions};
//! let sim = KubeSim::start(SimOptions::default()).await?;
//! let client = sim.client(); // or write sim.kubeconfig_yaml() to a file
//! # let _ = client; Ok(()) }
//! ```
//!
//! Tests should get their cluster from [`testing::TestCluster::acquire`], which
//! starts an emulator or, when `RELBOT_TEST_KUBECONFIG` is set, uses that cluster.

mod api;
pub mod bench;
mod controllers;
mod defaults;
mod discovery;
mod faults;
mod fieldsv1;
mod selectors;
mod server;
mod ssa;
mod status;
mod store;
pub mod testing;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use controllers::{
    ControllerOptions, FAILING_IMAGES_CONFIG_MAP, FAILING_IMAGES_KEY, FAILING_IMAGES_NAMESPACE,
    image_fails,
};
pub use faults::Faults;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// `Some` turns on controllers mode (workload status, PVC binding, load balancers).
    pub controllers: Option<ControllerOptions>,
    /// Range ClusterIPs are allocated from (K3s uses 10.43.0.0/16).
    pub service_cidr: String,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Events kept for watches resuming from an older resourceVersion; older ones get 410 Gone.
    pub watch_history: usize,
    /// Added to every successful write (not dry-runs) before it is answered:
    /// a real API server answers only once etcd (or K3s' kine) has committed
    /// the change, so its writes are bound by that latency, not by CPU.
    pub write_latency: Duration,
    /// How a streaming list (`watch` with `sendInitialEvents=true`) is answered.
    pub watch_list: WatchList,
}

/// Whether the emulator serves streaming lists (the WatchList feature), so
/// clients can be tested against each answer kube-apiserver gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WatchList {
    /// Initial events, then a bookmark annotated `k8s.io/initial-events-end`:
    /// kube-apiserver 1.32+ on an etcd with progress notifications.
    #[default]
    Served,
    /// 422 Invalid before the watch starts: 1.27–1.31, whose WatchList
    /// feature gate is off by default.
    GateOff,
    /// Accepted (200), then a 500 ERROR event: 1.32+ on an etcd without
    /// RequestWatchProgress (older than 3.4.31 / 3.5.13), which cannot tell
    /// when its watch cache is fresh enough to end the initial events.
    NoProgressNotify,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            port: 0,
            controllers: None,
            service_cidr: "10.43.0.0/16".into(),
            bookmark_interval: Duration::from_secs(5),
            watch_history: 10_000,
            write_latency: Duration::ZERO,
            watch_list: WatchList::Served,
        }
    }
}

/// One served request, for tests that count calls (e.g. "zero writes on re-sync").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// get, list, watch, create, update, patch, apply, delete, deletecollection or discovery.
    pub verb: String,
    pub dry_run: bool,
    pub status: u16,
}

impl RequestRecord {
    /// True for verbs that change state (and were not dry runs).
    pub fn is_write(&self) -> bool {
        !self.dry_run
            && matches!(
                self.verb.as_str(),
                "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
            )
    }
}

pub(crate) struct Sim {
    pub(crate) store: store::Store,
    pub(crate) opts: SimOptions,
    pub(crate) faults: Faults,
    log: Mutex<Vec<RequestRecord>>,
    pub(crate) failing_images: Mutex<Vec<String>>,
}

impl Sim {
    fn log(&self, r: RequestRecord) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

/// Entry point.
pub struct KubeSim;

impl KubeSim {
    /// Starts an emulator on its own runtime thread and returns once it accepts connections.
    pub async fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
        Self::start_blocking(opts)
    }

    /// [`KubeSim::start`] for callers outside an async context.
    pub fn start_blocking(opts: SimOptions) -> std::io::Result<SimHandle> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim {
            store: store::Store::new(&opts.service_cidr, opts.watch_history),
            failing_images: Mutex::new(
                opts.controllers
                    .as_ref()
                    .map(|c| c.failing_images.clone())
                    .unwrap_or_default(),
            ),
            opts,
            faults: Faults::new(),
            log: Mutex::new(Vec::new()),
        });
        bootstrap(&sim);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kubesim")
            .enable_all()
            .build()?;
        let server_sim = sim.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kubesim".into())
            .spawn(move || {
                rt.block_on(async move {
                    if let Some(c) = &server_sim.opts.controllers {
                        controllers::spawn(server_sim.clone(), c.ready_delay);
                    }
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("kubesim: cannot use listener: {e}");
                            return;
                        }
                    };
                    let app = server::router(server_sim);
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("kubesim: server stopped: {e}");
                    }
                });
                // Open watch streams would keep a graceful shutdown waiting.
                rt.shutdown_timeout(Duration::from_millis(100));
                let _ = done_tx.send(());
            })?;
        Ok(SimHandle {
            addr,
            sim,
            stop: Some(stop_tx),
            thread: Some(thread),
            done: Mutex::new(done_rx),
        })
    }
}

/// Objects a fresh cluster has.
fn bootstrap(sim: &Sim) {
    let params = api::Params(
        [("fieldManager".to_string(), "kube-apiserver".to_string())]
            .into_iter()
            .collect(),
    );
    let w = api::Writer {
        params: &params,
        user_agent: "kube-apiserver",
    };
    let find = |plural: &str| {
        sim.store
            .lock()
            .find("", "v1", plural)
            .expect("built-in resource")
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let t = api::Target {
            res: find("namespaces"),
            ns: String::new(),
            name: None,
            sub: None,
        };
        let body = serde_json::json!({"metadata": {"name": ns}});
        let _ = api::create(sim, &t, &w, body);
    }
    let ip = std::net::Ipv4Addr::from(
        u32::from(
            sim.opts
                .service_cidr
                .split('/')
                .next()
                .unwrap_or_default()
                .parse::<std::net::Ipv4Addr>()
                .unwrap_or(std::net::Ipv4Addr::new(10, 43, 0, 0)),
        ) + 1,
    );
    let t = api::Target {
        res: find("services"),
        ns: "default".into(),
        name: None,
        sub: None,
    };
    let body = serde_json::json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip.to_string(), "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}});
    let _ = api::create(sim, &t, &w, body);
}

/// A running emulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    done: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A kubeconfig for this emulator (plain HTTP, token user, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:\n    token: kubesim-token\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A `kube::Client` for this emulator. Call it inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        let uri = self.url().parse().expect("a valid URL");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        kube::Client::try_from(config).expect("a client for a plain-HTTP server")
    }

    /// Every request served so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.sim
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear_request_log(&self) {
        self.sim
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.sim.faults
    }

    /// Images that never become ready in controllers mode.
    pub fn set_failing_images<I: IntoIterator<Item = S>, S: Into<String>>(&self, images: I) {
        *self
            .sim
            .failing_images
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = images.into_iter().map(Into::into).collect();
    }

    /// Stops the server and waits (up to two seconds) for its thread.
    pub fn shutdown(mut self) {
        self.stop_now(true);
    }

    fn stop_now(&mut self, join: bool) {
        self.sim.faults.drop_watches();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // A client holding a request open must not hang the caller.
        if let Some(t) = self.thread.take()
            && join
            && self
                .done
                .lock()
                .is_ok_and(|d| d.recv_timeout(Duration::from_secs(2)).is_ok())
        {
            let _ = t.join();
        }
    }
}

// Tests share handles across tasks.
const _: fn() = || {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<SimHandle>();
};

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_now(false);
    }
}
