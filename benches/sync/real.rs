//! The sync benchmark against a real API server: `RELBOT_BENCH_REAL=1 cargo
//! bench --bench sync` (or `cargo bench --bench sync -- --real`).
//!
//! The server is the cluster of `RELBOT_TEST_KUBECONFIG` when set, else a
//! control plane started through the tests' harness (crates/controlplane)
//! from the newest folder of `KUBEBUILDER_ASSETS` / `/usr/local/kubebuilder`,
//! with its kubelet stand-in so Deployments roll out as on a real cluster.
//!
//! Side by side, for one application of 1,000 objects (800 ConfigMaps, 100
//! Services and 100 Deployments in 100 files), each in a fresh namespace:
//! `relbot sync` (the CLI binary, as a user runs it), `kubectl apply
//! --server-side` of the same files, and the server's floor (relbot's very
//! apply requests from a bare client over 8 keep-alive connections), and
//! how relbot's full sync splits into its plan (every object dry-run) and
//! its applies. Then the no-op re-check and one changed object, and the
//! peak RSS of a no-op re-check of 5,000 objects. Each figure is the
//! median of several rounds (`RELBOT_BENCH_RUNS`, default 3); rounds
//! interleave the three clients so drift of the machine touches all alike.
//! Times are printed, never asserted. With `--requests`, it prints instead
//! what each kind of request a full sync sends costs the server
//! (`request_costs.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use relbot::config::Application;
use relbot::manifest::{Manifest, Origin};
use relbot::sync::inventory::desired_body;
use serde_json::{Value, json};

#[path = "request_costs.rs"]
mod request_costs;

/// Objects per file: 8 ConfigMaps, a Service and a Deployment.
const PER_FILE: usize = 10;

/// Applies in flight for the floor: relbot's default `apply.concurrency`.
const FLOOR_CONCURRENCY: usize = 8;

/// Whether the caller asked for the real-server mode.
pub fn wanted(args: &[String]) -> bool {
    args.iter().any(|a| a == "--real")
        || std::env::var("RELBOT_BENCH_REAL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Where the server comes from: a given kubeconfig, or a control plane this
/// process started (stopped when dropped).
enum Server {
    Given(PathBuf),
    Started(controlplane::ControlPlane),
}

impl Server {
    fn kubeconfig(&self) -> PathBuf {
        match self {
            Server::Given(path) => path.clone(),
            Server::Started(cp) => cp.kubeconfig(),
        }
    }
}

/// The benchmark; with `requests_only`, what each kind of request costs
/// the server instead ([`request_costs`]).
pub fn run(requests_only: bool) {
    let runs: usize = std::env::var("RELBOT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let server = match std::env::var_os("RELBOT_TEST_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(path) => Server::Given(path.into()),
        None => {
            // The newest version found: the folders come sorted.
            let Some(assets) = controlplane::asset_folders().pop() else {
                eprintln!(
                    "no real server: set RELBOT_TEST_KUBECONFIG, or KUBEBUILDER_ASSETS to a folder with kube-apiserver (or install one under {})",
                    controlplane::DEFAULT_ASSETS_ROOT
                );
                std::process::exit(2);
            };
            println!("starting a control plane from {}", assets.display());
            // On this (main) thread: its processes die with the thread that
            // started them.
            match controlplane::ControlPlane::start(&assets) {
                Ok(cp) => Server::Started(cp),
                Err(e) => {
                    eprintln!(
                        "cannot start the control plane from {}: {e}",
                        assets.display()
                    );
                    std::process::exit(2);
                }
            }
        }
    };
    let kubeconfig = server.kubeconfig();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = controlplane::client_from(&kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if matches!(server, Server::Started(_)) {
            tokio::spawn(controlplane::standin::run(client.clone(), Vec::new()));
        }
        let version = client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|e| format!("unknown version ({e})"));
        let bench = Bench {
            client,
            kubeconfig,
            work: tempfile::tempdir().expect("temp dir"),
            tag: format!("{:x}", std::process::id()),
        };
        if requests_only {
            let pids = match &server {
                Server::Started(cp) => cp.server_process_ids(),
                Server::Given(_) => Vec::new(),
            };
            bench.request_costs(runs, &version, &pids).await;
        } else {
            bench.all(runs, &version).await;
        }
    });
    drop(server);
}

struct Bench {
    client: kube::Client,
    kubeconfig: PathBuf,
    work: tempfile::TempDir,
    /// Keeps this run's namespaces apart from an earlier run's on a given cluster.
    tag: String,
}

/// What one `relbot sync` run reported.
struct CliRun {
    wall: Duration,
    exit: i32,
    requests: u64,
    writes: u64,
    peak_rss_kib: i64,
    /// relbot's own timings: the plan (with every dry-run) and the applies.
    plan: Duration,
    apply: Duration,
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

impl Bench {
    async fn all(&self, runs: usize, version: &str) {
        let app_dir = self.write_files("app-1000", 1_000, "v1");
        let changed_dir = self.write_files("app-1000-changed", 1_000, "v1");
        // One changed object: the first ConfigMap's data.
        let first = changed_dir.join("part-000.yaml");
        let text = std::fs::read_to_string(&first).expect("read part");
        std::fs::write(&first, text.replacen("version: v1", "version: v2", 1)).expect("write");

        println!(
            "relbot sync benchmark against a real API server ({version}), medians of {runs} runs"
        );
        println!(
            "1,000 objects (800 ConfigMaps, 100 Services, 100 Deployments in 100 files), one application"
        );
        let (mut full, mut kubectl, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let mut floor_requests = 0;
        let (mut noop, mut one) = (Vec::new(), Vec::new());
        let (mut first_check, mut first_runs) = (Vec::new(), Vec::new());
        let (mut full_runs, mut noop_runs, mut one_runs) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..runs {
            let ns = self.namespace(&format!("relbot-{round}")).await;
            let run = self.relbot(&app_dir, &ns);
            full.push(run.wall);
            full_runs.push(run);
            self.settle(&ns, Duration::from_secs(60)).await;
            // The first re-check after the rollouts records the health that
            // changed (Progressing to Healthy) in the status ConfigMap: one
            // write. The re-check after it is the steady state measured.
            let first = self.relbot(&app_dir, &ns);
            first_check.push(first.wall);
            first_runs.push(first);
            let run = self.relbot(&app_dir, &ns);
            noop.push(run.wall);
            noop_runs.push(run);
            let run = self.relbot(&changed_dir, &ns);
            one.push(run.wall);
            one_runs.push(run);

            let ns = self.namespace(&format!("floor-{round}")).await;
            let (wall, sent) = self.floor(&app_dir, &ns).await;
            floor.push(wall);
            floor_requests = sent;
            self.settle(&ns, Duration::from_secs(60)).await;

            let ns = self.namespace(&format!("kubectl-{round}")).await;
            if let Some(wall) = self.kubectl(&app_dir, &ns) {
                kubectl.push(wall);
            }
            self.settle(&ns, Duration::from_secs(60)).await;
        }

        let full_m = median(&mut full);
        let floor_m = median(&mut floor);
        let noop_m = median(&mut noop);
        let one_m = median(&mut one);
        let header = format!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}",
            "run", "median", "min", "max", "requests", "writes", "exit"
        );
        println!("{header}");
        let line = |what: &str, walls: &[Duration], runs: &[CliRun]| {
            let (requests, writes, exit) = match runs.last() {
                Some(r) => (
                    r.requests.to_string(),
                    r.writes.to_string(),
                    // The worst exit of all rounds.
                    runs.iter().map(|r| r.exit).max().unwrap_or(0).to_string(),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let mut sorted = walls.to_vec();
            let m = median(&mut sorted);
            println!(
                "{what:<44} {:>9} {:>9} {:>9} {requests:>9} {writes:>7} {exit:>5}",
                secs(m),
                secs(sorted[0]),
                secs(sorted[sorted.len() - 1]),
            );
        };
        line("relbot sync (full)", &full, &full_runs);
        // Where the full sync's time goes: the plan is mostly the dry-run
        // of every object (nothing is written before all are validated),
        // the applies are the floor's very requests.
        let mut plans: Vec<Duration> = full_runs.iter().map(|r| r.plan).collect();
        let mut applies: Vec<Duration> = full_runs.iter().map(|r| r.apply).collect();
        let apply_m = median(&mut applies);
        println!(
            "  of which: plan with every dry-run {}, applies {} ({:.2}x the floor's)",
            secs(median(&mut plans)),
            secs(apply_m),
            apply_m.as_secs_f64() / floor_m.as_secs_f64()
        );
        if kubectl.is_empty() {
            println!("{:<44} {:>9}", "kubectl apply --server-side", "failed");
        } else {
            line("kubectl apply --server-side", &kubectl, &[]);
        }
        println!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}",
            format!("server floor (bare client, {FLOOR_CONCURRENCY} connections)"),
            secs(floor_m),
            secs(*floor.iter().min().expect("runs")),
            secs(*floor.iter().max().expect("runs")),
            floor_requests,
            floor_requests,
            "-"
        );
        line(
            "relbot sync, first re-check after rollout",
            &first_check,
            &first_runs,
        );
        line("relbot sync, no-op re-check", &noop, &noop_runs);
        line("relbot sync, one changed object", &one, &one_runs);

        // 5,000 objects: one full sync to set up, then the no-op re-check whose
        // peak memory counts.
        let big_dir = self.write_files("app-5000", 5_000, "v1");
        let ns = self.namespace("relbot-5000").await;
        let setup = self.relbot(&big_dir, &ns);
        self.settle(&ns, Duration::from_secs(240)).await;
        self.relbot(&big_dir, &ns);
        let big = self.relbot(&big_dir, &ns);
        let rss_mib = big.peak_rss_kib as f64 / 1024.0;
        println!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}   peak RSS {rss_mib:.1} MiB (full sync: {}, {:.1} MiB)",
            "5,000 objects: relbot sync, no-op re-check",
            secs(big.wall),
            "",
            "",
            big.requests,
            big.writes,
            big.exit,
            secs(setup.wall),
            setup.peak_rss_kib as f64 / 1024.0,
        );

        println!("targets:");
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        if let Some(kubectl_m) = (!kubectl.is_empty()).then(|| median(&mut kubectl)) {
            let share = full_m.as_secs_f64() / kubectl_m.as_secs_f64();
            println!(
                "  full sync / kubectl      {:>6.1} %   (<= 10 %)    {}",
                100.0 * share,
                verdict(share <= 0.10)
            );
        }
        let ratio = full_m.as_secs_f64() / floor_m.as_secs_f64();
        println!(
            "  full sync / floor        {ratio:>6.2} x   (<= 1.5 x)   {}",
            verdict(ratio <= 1.5)
        );
        let noop_ok = noop_m < Duration::from_millis(250)
            && noop_runs.iter().all(|r| r.writes == 0 && r.exit == 0);
        println!(
            "  no-op re-check           {:>6.3} s   (< 0.25 s, 0 writes, exit 0)   {}",
            noop_m.as_secs_f64(),
            verdict(noop_ok)
        );
        println!(
            "  one changed object       {:>6.3} s   (< 0.3 s)    {}",
            one_m.as_secs_f64(),
            verdict(one_m < Duration::from_millis(300))
        );
        println!(
            "  5,000 no-op peak RSS     {rss_mib:>6.1} MiB (< 64 MiB)   {}",
            verdict(rss_mib < 64.0)
        );
        self.clean_up().await;
    }

    /// The application's files: per file 8 ConfigMaps, a Service and a
    /// Deployment, none naming a namespace (each client is told one).
    fn write_files(&self, name: &str, n: usize, version: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).expect("app dir");
        for (file, chunk) in objects(n, version).chunks(PER_FILE).enumerate() {
            let docs: Vec<String> = chunk
                .iter()
                .map(|o| serde_saphyr::to_string(o).expect("yaml"))
                .collect();
            std::fs::write(dir.join(format!("part-{file:03}.yaml")), docs.join("---\n"))
                .expect("write part");
        }
        dir
    }

    /// A fresh namespace (made outside every measurement).
    async fn namespace(&self, name: &str) -> String {
        let name = format!("bench-{}-{name}", self.tag);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"relbot.dev/bench": self.tag}}}))
        .expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        // The namespace's default ServiceAccount is made asynchronously;
        // Pods wait for it, but nothing measured here does.
        name
    }

    /// Waits (up to `limit`) until every Deployment of `ns` is available,
    /// so the controllers' work for one client's objects is done before the
    /// next client is measured.
    async fn settle(&self, ns: &str, limit: Duration) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let deadline = Instant::now() + limit;
        loop {
            let pending = match api.list(&ListParams::default()).await {
                Ok(list) => list
                    .items
                    .iter()
                    .filter(|d| {
                        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        let have = d
                            .status
                            .as_ref()
                            .and_then(|s| s.available_replicas)
                            .unwrap_or(0);
                        have < want
                    })
                    .count(),
                Err(_) => 0,
            };
            if pending == 0 {
                return;
            }
            if Instant::now() > deadline {
                println!(
                    "  ({pending} Deployment(s) in {ns} still rolling out after {} s; going on)",
                    limit.as_secs()
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `relbot sync` of `dir` as one application in `ns`, as a user runs it.
    fn relbot(&self, dir: &Path, ns: &str) -> CliRun {
        // A relbot.yaml naming the application (relbot writes only those),
        // kept outside the application's folder.
        let config = self.work.path().join(format!("relbot-{ns}.yaml"));
        let folder = dir.file_name().expect("folder name").to_string_lossy();
        std::fs::write(
            &config,
            format!("applications:\n  - name: {ns}\n    path: {folder}\n    namespace: {ns}\n"),
        )
        .expect("write relbot.yaml");
        let mut command = Command::new(env!("CARGO_BIN_EXE_relbot"));
        command
            .arg("--config")
            .arg(&config)
            .args(["sync", "--no-progress", "-o", "json", "--source"])
            .arg(dir.parent().expect("work folder"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.work.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let start = Instant::now();
        let (output, peak_rss_kib) = run_with_peak_rss(command);
        let wall = start.elapsed();
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let exit = output.status.code().unwrap_or(-1);
        if exit != 0 {
            println!(
                "  relbot sync exited {exit}: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .chain(
                        doc["applications"][0]["errors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                    )
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        let requests = &doc["applications"][0]["requests"];
        let count = |k: &str| requests[k].as_u64().unwrap_or(0);
        let timings = &doc["applications"][0]["timings"];
        let ms = |k: &str| Duration::from_millis(timings[k].as_u64().unwrap_or(0));
        CliRun {
            wall,
            exit,
            requests: count("reads") + count("dry_runs") + count("writes"),
            writes: count("writes"),
            peak_rss_kib,
            plan: ms("planMs"),
            apply: ms("applyMs"),
        }
    }

    /// relbot's apply bodies for the objects of `dir` in `ns`, in relbot's
    /// order (ConfigMaps, Services, then Deployments), each with its kind.
    fn bodies(&self, dir: &Path, ns: &str) -> Vec<(String, Value)> {
        let app: Application =
            serde_saphyr::from_str(&format!("name: {ns}\npath: .\nnamespace: {ns}\n"))
                .expect("application");
        let mut manifests = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("app dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read part");
            for (line, doc) in text.split("---\n").enumerate() {
                let mut object: Value = serde_saphyr::from_str(doc).expect("parse part");
                object["metadata"]["namespace"] = json!(ns);
                let manifest = Manifest {
                    object,
                    origin: Origin {
                        file: file.clone(),
                        line: line + 1,
                    },
                };
                manifests.push(manifest);
            }
        }
        // In the order relbot applies them (ConfigMaps, Services, then
        // Deployments), so the controllers' work on Deployments starts at the
        // same point of both runs.
        relbot::source::order::sort_manifests(&mut manifests);
        manifests
            .iter()
            .map(|m| (m.kind().to_string(), desired_body(m, &app, "relbot").body))
            .collect()
    }

    /// The floor: relbot's apply requests for the same objects (bodies,
    /// labels, annotations, strict field validation, force) from a bare
    /// client, 8 in flight, nothing else done.
    async fn floor(&self, dir: &Path, ns: &str) -> (Duration, usize) {
        let bodies = self.bodies(dir, ns);
        let mut params = PatchParams::apply("relbot").force();
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        let sent = bodies.len();
        let start = Instant::now();
        stream::iter(bodies)
            .map(|(kind, body)| {
                let (client, params) = (self.client.clone(), params.clone());
                async move {
                    let resource = match kind.as_str() {
                        "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
                        "Service" => ApiResource::erase::<Service>(&()),
                        _ => ApiResource::erase::<Deployment>(&()),
                    };
                    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &resource);
                    let name = body["metadata"]["name"].as_str().expect("name");
                    api.patch(name, &params, &Patch::Apply(&body))
                        .await
                        .unwrap_or_else(|e| panic!("floor apply of {kind} {name}: {e}"));
                }
            })
            .buffer_unordered(FLOOR_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        (start.elapsed(), sent)
    }

    /// `kubectl apply --server-side` of the same files: `None` when there is
    /// no kubectl or it failed (which it says).
    fn kubectl(&self, dir: &Path, ns: &str) -> Option<Duration> {
        let Some(kubectl) = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            println!("  kubectl comparison skipped: no kubectl installed");
            return None;
        };
        let start = Instant::now();
        let output = Command::new(kubectl)
            .args(["apply", "--server-side", "-n", ns, "-f"])
            .arg(dir)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .output()
            .expect("run kubectl");
        let wall = start.elapsed();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            println!(
                "  kubectl failed: {}",
                stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
            );
            return None;
        }
        Some(wall)
    }

    /// Deletes this run's namespaces (not waited for).
    async fn clean_up(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!("relbot.dev/bench={}", self.tag);
        if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
            for ns in list.items {
                if let Some(name) = ns.metadata.name {
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            }
        }
    }
}

/// The argument that makes this benchmark binary a launcher: it runs the
/// rest of its arguments as a command and writes that command's peak RSS.
pub const MEASURE_FLAG: &str = "--run-measured";

/// Runs `command` to its end; its output and its peak resident memory (KiB).
///
/// The command is started through this benchmark binary, freshly executed
/// as a small launcher, rather than straight from here: Linux counts the
/// memory of the process a child was forked from in the child's peak
/// (`exec` keeps the larger of the old and the new high-water mark), so a
/// child forked from this benchmark — which holds thousands of objects —
/// would report the benchmark's size, not relbot's.
fn run_with_peak_rss(command: Command) -> (std::process::Output, i64) {
    let peak_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut launcher = Command::new(std::env::current_exe().expect("own path"));
    launcher
        .arg(MEASURE_FLAG)
        .arg(peak_file.path())
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => launcher.env(key, value),
            None => launcher.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        launcher.current_dir(dir);
    }
    let output = launcher.output().expect("run relbot through the launcher");
    let peak_kib = std::fs::read_to_string(peak_file.path())
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .expect("the launcher wrote the peak RSS");
    (output, peak_kib)
}

/// The launcher's side of [`run_with_peak_rss`]: `args` is the file for
/// the figure, then the command. Exits with the command's exit code.
// The child is reaped by wait4 below (std's wait cannot return its rusage).
#[allow(clippy::zombie_processes)]
pub fn run_measured(args: &[String]) -> ! {
    let [peak_file, program, rest @ ..] = args else {
        panic!("{MEASURE_FLAG} FILE PROGRAM [ARGS..]");
    };
    let child = Command::new(program)
        .args(rest)
        .spawn()
        .expect("run the measured command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, reaped here once (std's Child is not
    // waited on afterwards), and both out-pointers are valid.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 on the measured command");
    std::fs::write(peak_file, usage.ru_maxrss.to_string()).expect("write the peak RSS");
    let status: std::process::ExitStatus = std::os::unix::process::ExitStatusExt::from_raw(status);
    std::process::exit(status.code().unwrap_or(1))
}

/// `n` objects: per 10, 8 ConfigMaps, a Service and a Deployment (1 replica)
/// the Service selects.
fn objects(n: usize, version: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let group = i / PER_FILE;
            match i % PER_FILE {
                8 => json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("web-{group}")},
                    "spec": {"selector": {"app": format!("web-{group}")},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
                9 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": format!("web-{group}")},
                    "spec": {"replicas": 1,
                        "selector": {"matchLabels": {"app": format!("web-{group}")}},
                        "template": {
                            "metadata": {"labels": {"app": format!("web-{group}")}},
                            "spec": {"containers": [{"name": "web",
                                "image": "registry.example/web:1.0",
                                "ports": [{"containerPort": 8080}]}]}}}}),
                k => json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("config-{group}-{k}")},
                    "data": {"version": version, "payload": "x".repeat(200)}}),
            }
        })
        .collect()
}
