//! Reconciler benchmark (not a timed test): against the emulator, with N =
//! 100, 1,000 and 5,000 objects, a first full sync, a no-op re-sync and a
//! one-object change — wall time, requests sent and peak memory. For N =
//! 1,000 it also measures, side by side on the same server, the server's
//! floor (relbot's very apply requests from a bare client over 8 keep-alive
//! connections) and `kubectl apply --server-side` of the same objects; then
//! all of it again against an emulator whose writes wait 5 ms for a simulated
//! storage commit, as a real API server's wait for etcd, where relbot runs
//! with 8 and with 32 applies in flight.
//!
//! The emulators run in child processes (this binary re-executed with
//! `--serve-kubesim`), so peak memory (VmHWM, reset per measurement through
//! /proc/self/clear_refs) is relbot's alone.
//!
//! `cargo bench --bench sync` (all sizes) or `cargo bench --bench sync -- 100 1000`.
//!
//! `RELBOT_BENCH_REAL=1 cargo bench --bench sync` (or `-- --real`) measures
//! against a real API server instead: see `sync/real.rs`.

#[path = "sync/real.rs"]
mod real;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use relbot::cluster::client::Cluster;
use relbot::config::Application;
use relbot::manifest::{Manifest, Origin};
use relbot::sync::apply::sync_application;
use relbot::sync::inventory::desired_body;
use relbot::sync::result::SyncResult;
use relbot::sync::settings::SyncSettings;
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(real::MEASURE_FLAG) {
        real::run_measured(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--serve-kubesim") {
        let latency = args
            .get(2)
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or_default();
        serve_kubesim(&args[1], latency);
        return;
    }
    if real::wanted(&args) {
        relbot::tls::init();
        real::run(args.iter().any(|a| a == "--requests"));
        return;
    }
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1_000, 5_000]
    } else {
        sizes
    };
    relbot::tls::init();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, kubeconfig) = start_emulator(dir.path(), Duration::ZERO);
    let (mut slow_child, slow_kubeconfig) = start_emulator(dir.path(), WRITE_LATENCY);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = load_config(&kubeconfig).await;
        println!(
            "relbot sync benchmark against kubesim ({})",
            config.cluster_url
        );
        println!(
            "{:>6}  {:<24} {:>9} {:>9} {:>8} {:>8} {:>10}",
            "N", "run", "wall", "requests", "writes", "dry-runs", "peak RSS"
        );
        for &n in &sizes {
            bench_size(&config, n, &kubeconfig).await;
        }
        if sizes.contains(&1_000) {
            bench_write_latency(1_000, &slow_kubeconfig).await;
        }
    });
    for child in [&mut child, &mut slow_child] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A real API server answers a write once etcd (K3s: kine over SQLite) has
/// committed it: a few milliseconds that no amount of client CPU removes.
const WRITE_LATENCY: Duration = Duration::from_millis(5);

async fn load_config(kubeconfig: &Path) -> kube::Config {
    kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config")
}

/// The same comparison against an emulator whose writes wait for a simulated
/// storage commit, as a real API server's do: time is then bound by latency
/// and concurrency, not by this machine's two cores.
async fn bench_write_latency(n: usize, kubeconfig: &Path) {
    let config = load_config(kubeconfig).await;
    println!(
        "        with {} ms write latency (a storage commit, as on a real API server):",
        WRITE_LATENCY.as_millis()
    );
    let cluster = Cluster::new(config.clone()).expect("cluster");
    let mut fastest = Duration::MAX;
    for concurrency in [8, 32] {
        let name = format!("slow-{n}-c{concurrency}");
        let app = application(&name);
        let (_, wall) = relbot_run_with(
            &cluster,
            &app,
            &objects(&name, n, "v1"),
            n,
            &format!("relbot full, {concurrency} in flight"),
            concurrency,
        )
        .await;
        fastest = fastest.min(wall);
        if concurrency == 8 {
            let floor = server_floor(&config, n, concurrency).await;
            row(
                n,
                "server floor, 8 in flight",
                floor,
                Some((0, n as u64, 0)),
                "-",
            );
            println!(
                "        full sync: {:.2}x the server floor (target <= 1.5x)",
                wall.as_secs_f64() / floor.as_secs_f64()
            );
        }
    }
    if let Some(kubectl) = kubectl_apply(kubeconfig, n) {
        row(n, "kubectl apply --server-side", kubectl, None, "-");
        println!(
            "        full sync ({} in flight, apply.concurrency): {:.1}% of kubectl's time (target <= 10%)",
            32,
            100.0 * fastest.as_secs_f64() / kubectl.as_secs_f64()
        );
    }
}

/// The child process: an emulator until stdin closes.
fn serve_kubesim(kubeconfig: &str, write_latency: Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = kubesim::KubeSim::start(kubesim::SimOptions {
            write_latency,
            ..Default::default()
        })
        .await
        .expect("kubesim");
        sim.write_kubeconfig(kubeconfig).expect("write kubeconfig");
        println!("ready {}", sim.url());
        let _ = std::io::stdout().flush();
        // The parent closes stdin (or dies): stop.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    });
}

fn start_emulator(dir: &Path, write_latency: Duration) -> (Child, PathBuf) {
    let kubeconfig = dir.join(format!("kubeconfig-{}ms", write_latency.as_millis()));
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve-kubesim")
        .arg(&kubeconfig)
        .arg(write_latency.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the emulator process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("emulator ready line");
    assert!(line.starts_with("ready"), "emulator said {line:?}");
    (child, kubeconfig)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| {
            let kb: f64 = l
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            format!("{:.1} MiB", kb / 1024.0)
        })
        .unwrap_or_else(|| "n/a".into())
}

/// N objects: a namespace, then ConfigMaps and headless Services alternating.
fn objects(namespace: &str, n: usize, version: &str) -> Vec<Manifest> {
    let origin = |line| Origin {
        file: "bench/all.yaml".into(),
        line,
    };
    let mut out = vec![Manifest {
        object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        origin: origin(1),
    }];
    for i in 0..n.saturating_sub(1) {
        let object = if i % 2 == 0 {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i}"), "namespace": namespace},
                "data": {"version": version, "payload": "x".repeat(200)}})
        } else {
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}"), "namespace": namespace},
                "spec": {"clusterIP": "None", "selector": {"app": format!("a{i}")},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        };
        out.push(Manifest {
            object,
            origin: origin(10 + i),
        });
    }
    out
}

fn application(name: &str) -> Application {
    serde_saphyr::from_str(&format!("name: {name}\npath: bench\nnamespace: {name}\n"))
        .expect("application")
}

fn row(n: usize, what: &str, wall: Duration, requests: Option<(u64, u64, u64)>, peak: &str) {
    let (total, writes, dry) = match requests {
        Some((r, w, d)) => ((r + w + d).to_string(), w.to_string(), d.to_string()),
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "{n:>6}  {what:<24} {:>8.3}s {total:>9} {writes:>8} {dry:>8} {peak:>10}",
        wall.as_secs_f64()
    );
}

/// One relbot sync, discovery included, as `relbot sync` runs it.
async fn relbot_run(
    cluster: &Cluster,
    app: &Application,
    manifests: &[Manifest],
    n: usize,
    what: &str,
) -> (SyncResult, Duration) {
    relbot_run_with(cluster, app, manifests, n, what, 8).await
}

async fn relbot_run_with(
    cluster: &Cluster,
    app: &Application,
    manifests: &[Manifest],
    n: usize,
    what: &str,
    concurrency: usize,
) -> (SyncResult, Duration) {
    let settings = SyncSettings {
        concurrency,
        status_namespace: "relbot".into(),
        health_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(200),
        record_status: true,
        progress: Default::default(),
        health_rules: Default::default(),
        wait_for_last_wave: true,
        trigger: "test".into(),
    };
    reset_peak();
    let before = cluster.counts();
    let start = Instant::now();
    let index = cluster.discover().await.expect("discovery");
    let result = sync_application(cluster, &index, app, manifests, Some("bench"), &settings).await;
    let wall = start.elapsed();
    let r = cluster.counts().since(&before);
    row(
        n,
        what,
        wall,
        Some((r.reads, r.writes, r.dry_runs)),
        &peak_rss(),
    );
    let t = &result.timings;
    println!(
        "{:>6}  {:<24} plan {} ms, apply {} ms, health {} ms, prune {} ms",
        "", "", t.plan_ms, t.apply_ms, t.health_ms, t.prune_ms
    );
    assert!(
        result.errors.is_empty(),
        "{what} failed: {:?}",
        result.errors
    );
    (result, wall)
}

async fn bench_size(config: &kube::Config, n: usize, kubeconfig: &Path) {
    let cluster = Cluster::new(config.clone()).expect("cluster");
    let name = format!("bench-{n}");
    let app = application(&name);
    let desired = objects(&name, n, "v1");
    let (first, full) = relbot_run(&cluster, &app, &desired, n, "relbot full sync").await;
    assert_eq!(first.counts().created, n, "{:?}", first.counts());
    let (noop, noop_wall) = relbot_run(&cluster, &app, &desired, n, "relbot no-op re-sync").await;
    assert_eq!(noop.requests.writes, 0, "a no-op writes nothing");
    let mut changed = desired.clone();
    changed[1].object["data"]["version"] = json!("v2");
    let (one, _) = relbot_run(&cluster, &app, &changed, n, "relbot one change").await;
    assert_eq!(one.counts().updated, 1);

    if n == 1_000 {
        let floor = server_floor(config, n, 8).await;
        row(
            n,
            "server floor (bare SSA)",
            floor,
            Some((0, n as u64, 0)),
            "-",
        );
        println!(
            "        full sync: {:.2}x the server floor (target <= 1.5x)",
            full.as_secs_f64() / floor.as_secs_f64()
        );
        match kubectl_apply(kubeconfig, n) {
            Some(kubectl) => {
                row(n, "kubectl apply --server-side", kubectl, None, "-");
                println!(
                    "        full sync: {:.1}% of kubectl's time (target <= 10%)",
                    100.0 * full.as_secs_f64() / kubectl.as_secs_f64()
                );
                // kubectl applies one object at a time; a tenth of its time
                // can be below what the server needs for the same writes.
                if kubectl / 10 < floor {
                    println!(
                        "        a tenth of kubectl ({} ms) is below the server floor ({} ms): no client reaches it on this server",
                        (kubectl / 10).as_millis(),
                        floor.as_millis()
                    );
                }
            }
            None => println!("        kubectl comparison skipped"),
        }
        println!(
            "        no-op re-check: {} ms (target < 500 ms)",
            noop_wall.as_millis()
        );
    }
}

/// The server's floor: the very requests relbot's full sync writes (the same
/// bodies, labels and annotations included, with strict field validation and
/// force), sent from a bare kube client over 8 keep-alive connections with
/// nothing else done — no discovery, no lists, no status, no health.
async fn server_floor(config: &kube::Config, n: usize, concurrency: usize) -> Duration {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
    use kube::api::ValidationDirective;
    let client = kube::Client::try_from(config.clone()).expect("client");
    let name = format!("floor-{n}");
    let app = application(&name);
    let bodies: Vec<(String, Value)> = objects(&name, n, "v1")
        .iter()
        .map(|m| (m.kind().to_string(), desired_body(m, &app, "relbot").body))
        .collect();
    let mut params = PatchParams::apply("relbot").force();
    params.field_validation = Some(ValidationDirective::Strict);
    let start = Instant::now();
    let ns_api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    ns_api
        .patch(&name, &params, &Patch::Apply(&bodies[0].1))
        .await
        .expect("namespace");
    stream::iter(bodies.into_iter().skip(1))
        .map(|(kind, body)| {
            let (client, params, namespace) = (client.clone(), params.clone(), name.clone());
            async move {
                let resource = if kind == "ConfigMap" {
                    ApiResource::erase::<ConfigMap>(&())
                } else {
                    ApiResource::erase::<Service>(&())
                };
                let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
                let object_name = body["metadata"]["name"].as_str().expect("name");
                api.patch(object_name, &params, &Patch::Apply(&body))
                    .await
                    .expect("apply");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    start.elapsed()
}

/// `kubectl apply --server-side` of the same objects from one file: `None`
/// when there is no kubectl (or it failed, which it says).
fn kubectl_apply(kubeconfig: &Path, n: usize) -> Option<Duration> {
    let Some(kubectl) = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("        kubectl comparison skipped: no kubectl installed");
        return None;
    };
    let namespace = format!("kubectl-{n}");
    let file = kubeconfig.with_file_name("objects.yaml");
    let docs: Vec<String> = objects(&namespace, n, "v1")
        .iter()
        .map(|m| serde_saphyr::to_string(&m.object).expect("yaml"))
        .collect();
    std::fs::write(&file, docs.join("---\n")).expect("write objects");
    // The emulator serves no OpenAPI document, which kubectl's client-side
    // validation downloads; the server still validates (fieldValidation).
    let run = |validate: &str| {
        let start = Instant::now();
        let output = Command::new(kubectl)
            .args(["apply", "--server-side", "--field-manager", "kubectl-bench"])
            .arg(format!("--validate={validate}"))
            .arg("-f")
            .arg(&file)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .output()
            .expect("run kubectl");
        (start.elapsed(), output)
    };
    let (mut elapsed, mut output) = run("strict");
    if !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("openapi") {
        println!(
            "        (kubectl: the emulator has no OpenAPI document; measured with --validate=false)"
        );
        (elapsed, output) = run("false");
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!(
            "        kubectl failed: {}",
            stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
        );
        return None;
    }
    Some(elapsed)
}
