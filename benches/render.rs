//! Render + validate benchmark (not a timed test): 5,000 objects in 500
//! files — Deployments, headless Services and ConfigMaps — in a temporary
//! directory, rendered and validated through `source::load_desired_with`.
//!
//! Run with `cargo bench --bench render`. Prints wall time and peak memory
//! (VmHWM from /proc/self/status). Target: under 1 s and 100 MiB in release.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use relbot::config::Config;
use relbot::source::{self, KustomizeTool, RenderOptions};

const FILES: usize = 500;
const OBJECTS_PER_FILE: usize = 10;

fn deployment(out: &mut String, name: &str) {
    write!(
        out,
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: bench
  annotations:
    relbot.dev/sync-wave: \"1\"
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
    spec:
      containers:
        - name: app
          image: ahuora/django-api:0.0.17
          ports:
            - name: http
              containerPort: 8000
          env:
            - name: MODE
              value: production
            - name: PORT
              value: \"8000\"
          envFrom:
            - configMapRef:
                name: {name}-config
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{memory: 256Mi}}
          readinessProbe:
            httpGet: {{path: /api/status/, port: http}}
            periodSeconds: 10
"
    )
    .unwrap();
}

fn service(out: &mut String, name: &str) {
    write!(
        out,
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  clusterIP: None
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: 80
      targetPort: http
"
    )
    .unwrap();
}

fn config_map(out: &mut String, name: &str) {
    write!(
        out,
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: \"a,b,c\"
  settings.json: |
    {{\"workers\": 4, \"timeout\": 30}}
"
    )
    .unwrap();
}

fn generate(dir: &Path) {
    for f in 0..FILES {
        let mut text = String::new();
        for o in 0..OBJECTS_PER_FILE {
            if o > 0 {
                text.push_str("---\n");
            }
            let name = format!("svc-{f}-{}", o / 3);
            match o % 3 {
                0 => deployment(&mut text, &name),
                1 => service(&mut text, &name),
                _ => config_map(&mut text, &format!("{name}-{o}")),
            }
        }
        let sub = dir.join(format!("group-{:02}", f % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file-{f:03}.yaml")), text).unwrap();
    }
}

/// User + system CPU time of this process in seconds (/proc/self/stat): on
/// a shared machine, wall time also counts waiting for a core.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    generate(&tmp.path().join("apps/bench"));
    let config: Config = serde_saphyr::from_str(
        "applications:\n  - name: bench\n    path: apps/bench\n    namespace: bench\n",
    )
    .unwrap();
    let options = RenderOptions {
        kustomize: KustomizeTool::Disabled,
    };
    let rss_before = peak_rss_kib();

    // The whole pipeline: render, validate (typed round trip per object),
    // duplicates, namespace defaulting, sort.
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let apps =
        source::load_desired_with(tmp.path(), &config, &options).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let rss_peak = peak_rss_kib();
    let objects: usize = apps.iter().map(|a| a.manifests.len()).sum();
    assert_eq!(objects, FILES * OBJECTS_PER_FILE);
    drop(apps);

    // Rendering alone (walk, read, parse), for the breakdown.
    let start = Instant::now();
    let rendering = source::render::render(tmp.path(), &config.applications[0], &options);
    let render_only = start.elapsed();
    assert_eq!(rendering.objects.len(), objects);

    println!("render+validate: {objects} objects in {FILES} files");
    println!(
        "  wall time:            {:.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    if let Some(cpu) = cpu {
        println!("  CPU time (user+sys):  {:.1} ms", cpu * 1000.0);
    }
    println!(
        "  of which render only: {:.1} ms wall",
        render_only.as_secs_f64() * 1000.0
    );
    println!(
        "  peak memory (VmHWM):  {} (before rendering: {})",
        mib(rss_peak),
        mib(rss_before)
    );
}
