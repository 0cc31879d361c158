//! `relbot serve` under load, two shapes:
//!
//! - `latency`: webhook-to-applied latency for a one-object change (p50/p99
//!   over 100 pushes) and the memory of the serve process managing 1,000
//!   objects in 100 applications (idle after the first sync, after the
//!   pushes, and the peak). Targets (issue 7): p50 under 1 s, peak RSS
//!   under 64 MiB. Always against the in-process emulator.
//! - `many`: 1,000 applications of 4 objects each ([`many`]): the first full
//!   sync, a no-op pass and its writes, the peak RSS. Targets (issue 17):
//!   < 20 s, < 5 s with 0 writes, < 64 MiB. Against the emulator, or a real
//!   API server with `RELBOT_BENCH_REAL=1`.
//!
//! Run: `cargo bench --bench serve [-- latency|many]` (both by default;
//! builds relbot in release). Git is a real bare repository.

#[path = "../tests/support/git.rs"]
mod git_support;
#[path = "serve/many.rs"]
mod many;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git_support::{BareRepo, TestRepo, free_port};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kubesim::testing::TestCluster;
use relbot::server::webhook::github_signature;
use tempfile::TempDir;

const APPS: usize = 100;
const OBJECTS_PER_APP: usize = 10;
const PUSHES: usize = 100;
const SECRET: &str = "bench-secret";

fn app_file(app: usize, values: &[String]) -> String {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app{app:03}-cm{i:02}\ndata:\n  value: \"{value}\"\n"
        ));
    }
    out
}

/// relbot.yaml listing `apps` (each from `apps/<name>` into `ns`), written
/// to the repository with whatever the caller wrote there, committed and
/// pushed, and to a folder for `relbot serve --config`, which is returned.
fn publish_config(bare: &BareRepo, work: &TestRepo, ns: &str, apps: &[String]) -> TempDir {
    let mut config = format!(
        "repo:\n  url: {}\n  branch: main\n  interval: 1h\ngithub:\n  repository: acme/cluster-config\nstatus:\n  namespace: {ns}\napplications:\n",
        bare.url()
    );
    for app in apps {
        config.push_str(&format!(
            "  - name: {app}\n    path: apps/{app}\n    namespace: {ns}\n"
        ));
    }
    work.write("relbot.yaml", &config);
    work.commit("initial");
    work.git(&["push", "-q", "origin", "main"]);
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("relbot.yaml"), &config).unwrap();
    dir
}

/// The serve process; killed on drop.
struct Serve(Child);

impl Serve {
    /// `relbot serve` on a free port against `tc` with the configuration in
    /// `dir` (logging at `RELBOT_LOG`, else warnings); returns its base URL.
    fn start(tc: &TestCluster, dir: &Path) -> (Serve, String) {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_relbot"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(dir.join("relbot.yaml"))
            .arg("--kubeconfig")
            .arg(tc.kubeconfig_path())
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .env("RELBOT_GITHUB_WEBHOOK_SECRET", SECRET)
            .env(
                "RELBOT_LOG",
                std::env::var("RELBOT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start relbot serve");
        (Serve(child), format!("http://127.0.0.1:{port}"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends `event` as a signed GitHub push webhook; the HTTP status.
async fn send_push(
    http: &reqwest::Client,
    base: &str,
    delivery: &str,
    event: serde_json::Value,
) -> u16 {
    let body = serde_json::to_vec(&event).unwrap();
    http.post(format!("{base}/webhooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            github_signature(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn settled(http: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = http.get(format!("{base}/api/status")).send().await else {
        return false;
    };
    let Ok(status) = response.json::<serde_json::Value>().await else {
        return false;
    };
    status["ready"] == true
        && status["running"] == false
        && status["pending"] == false
        && status["apps"]
            .as_array()
            .is_some_and(|apps| apps.len() == APPS && apps.iter().all(|a| a["sync"] == "Synced"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    relbot::tls::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let picked = |name: &str| {
        let named: Vec<&String> = args
            .iter()
            .filter(|a| *a == "latency" || *a == "many")
            .collect();
        named.is_empty() || named.iter().any(|a| *a == name)
    };
    let real = std::env::var("RELBOT_BENCH_REAL").is_ok_and(|v| !v.is_empty() && v != "0");
    // Real mode without a given cluster: a control plane of our own, started
    // on this (main) thread, since its processes die with the thread that
    // started them.
    let given = std::env::var_os(kubesim::testing::KUBECONFIG_ENV).filter(|v| !v.is_empty());
    let control_plane = (real && given.is_none() && picked("many")).then(|| {
        let assets = controlplane::asset_folders()
            .pop()
            .expect("no kube-apiserver found: set RELBOT_TEST_KUBECONFIG or KUBEBUILDER_ASSETS");
        println!("starting a control plane from {}", assets.display());
        controlplane::ControlPlane::start(&assets)
            .unwrap_or_else(|e| panic!("cannot start the control plane: {e}"))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if picked("latency") {
            latency().await;
        }
        if picked("many") {
            match (&control_plane, &given) {
                (Some(cp), _) => {
                    let kubeconfig = cp.kubeconfig();
                    let client = controlplane::client_from(&kubeconfig)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    tokio::spawn(controlplane::standin::run(client, Vec::new()));
                    many::run(Some(kubeconfig)).await;
                }
                (None, Some(path)) if real => many::run(Some(path.into())).await,
                _ => many::run(None).await,
            }
        }
    });
    drop(runtime);
    drop(control_plane);
}

/// The `latency` shape (always the emulator).
async fn latency() {
    let tc = TestCluster::emulator("serve-bench", Default::default())
        .await
        .expect("kubesim");
    let ns = tc.namespace().to_string();
    let bare = BareRepo::new("cluster-config");
    let work = TestRepo::clone_from(&bare.url());
    let mut values: Vec<Vec<String>> = vec![vec!["v0".to_string(); OBJECTS_PER_APP]; APPS];
    let mut names = Vec::with_capacity(APPS);
    for (app, app_values) in values.iter().enumerate() {
        names.push(format!("app{app:03}"));
        work.write(
            &format!("apps/app{app:03}/objects.yaml"),
            &app_file(app, app_values),
        );
    }
    let dir = publish_config(&bare, &work, &ns, &names);

    let started = Instant::now();
    let (serve, base) = Serve::start(&tc, dir.path());
    let pid = serve.pid();
    let http = http_client();
    while !settled(&http, &base).await {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the first sync did not finish within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_sync = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = proc_status_kib(pid, "VmRSS:");
    let peak_after_first = proc_status_kib(pid, "VmHWM:");

    // 100 pushes, each changing one object of one application.
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), &ns);
    let mut latencies = Vec::with_capacity(PUSHES);
    for push in 0..PUSHES {
        let app = (push * 37) % APPS;
        let object = push % OBJECTS_PER_APP;
        let value = format!("p{push}");
        values[app][object] = value.clone();
        let before = work.head();
        let path = format!("apps/app{app:03}/objects.yaml");
        let after = work.commit_file(&path, &app_file(app, &values[app]), &format!("push {push}"));
        work.git(&["push", "-q", "origin", "main"]);
        let event = serde_json::json!({
            "ref": "refs/heads/main", "before": before, "after": after,
            "repository": {"full_name": "acme/cluster-config"},
            "commits": [{"id": after, "added": [], "removed": [], "modified": [path]}],
        });
        let name = format!("app{app:03}-cm{object:02}");
        let sent = Instant::now();
        let status = send_push(&http, &base, &format!("bench-{push}"), event).await;
        assert_eq!(status, 202);
        loop {
            let current = api
                .get(&name)
                .await
                .ok()
                .and_then(|cm| cm.data)
                .and_then(|d| d.get("value").cloned());
            if current.as_deref() == Some(value.as_str()) {
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "push {push} never applied"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(sent.elapsed());
    }
    let loaded_rss = proc_status_kib(pid, "VmRSS:");
    let peak = proc_status_kib(pid, "VmHWM:");
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;

    println!(
        "relbot serve: {APPS} applications, {} objects",
        APPS * OBJECTS_PER_APP
    );
    println!(
        "  first full sync (start to all Synced): {:.2} s",
        first_sync.as_secs_f64()
    );
    println!(
        "  webhook → applied, one-object change, {PUSHES} pushes: p50 {:.0} ms, p99 {:.0} ms, mean {:.0} ms, max {:.0} ms (target p50 < 1000 ms)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        mean.as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
    println!(
        "  memory: idle RSS {:.1} MiB, RSS after pushes {:.1} MiB, peak (VmHWM) after first sync {:.1} MiB, peak overall {:.1} MiB (target < 64 MiB)",
        mib(idle_rss),
        mib(loaded_rss),
        mib(peak_after_first),
        mib(peak)
    );
    drop(serve);
    tc.cleanup().await;
}
