//! Rewrite benchmark: 500 generated manifest files, image references found
//! for a set of policies, every reference bumped and written back.
//! Prints wall times and the process's peak resident memory (VmHWM).
//!
//! Run: `cargo bench --bench rewrite` (release profile).

use std::path::Path;
use std::time::Instant;

use relbot::release::rewrite::{PolicyTarget, bump_repository, files_for_policy, find_references};

const FILES: usize = 500;
const POLICIES: usize = 10;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let started = Instant::now();
    for i in 0..FILES {
        let (relative, body) = manifest(i);
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let generated = started.elapsed();
    let bytes: u64 = files_for_policy(root, &[])
        .unwrap()
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).unwrap().len())
        .sum();

    let globs = vec!["apps/**/*.yaml".to_string()];
    let started = Instant::now();
    let mut references = 0;
    for relative in files_for_policy(root, &globs).unwrap() {
        let text = std::fs::read_to_string(root.join(&relative)).unwrap();
        references += find_references(&relative, &text).unwrap().len();
    }
    let find_time = started.elapsed();

    let started = Instant::now();
    let mut write_time = std::time::Duration::ZERO;
    let (mut files_changed, mut lines_changed) = (0, 0);
    for p in 0..POLICIES {
        let image = format!("registry.local:5000/team/app-{p}");
        let name = format!("app-{p}");
        let policy = PolicyTarget {
            name: &name,
            image: &image,
        };
        let bump = bump_repository(root, &globs, &policy, "2.0.0", None).unwrap();
        assert!(bump.skipped.is_empty(), "{:?}", bump.skipped);
        for change in bump.changes {
            files_changed += 1;
            lines_changed += change.changes.len();
            let writing = Instant::now();
            std::fs::write(root.join(&change.path), change.new_text).unwrap();
            write_time += writing.elapsed();
        }
    }
    let bump_time = started.elapsed();
    assert!(lines_changed > 0 && lines_changed <= references);

    println!(
        "rewrite: {FILES} files ({:.1} KiB, generated in {:.0} ms), {references} references",
        bytes as f64 / 1024.0,
        generated.as_secs_f64() * 1e3
    );
    println!(
        "rewrite: find references in all files: {:.1} ms",
        find_time.as_secs_f64() * 1e3
    );
    println!(
        "rewrite: bump {POLICIES} policies (read + find + edit + verify + write): {:.1} ms, \
         of which writing files {:.1} ms; {files_changed} file writes, {lines_changed} lines changed",
        bump_time.as_secs_f64() * 1e3,
        write_time.as_secs_f64() * 1e3
    );
    println!("rewrite: peak memory (VmHWM): {}", peak_memory());
}

/// One generated file: a commented Deployment, a multi-document file with a
/// CronJob, a kustomization or a HelmRelease with marker comments.
fn manifest(i: usize) -> (String, String) {
    let app = |k: usize| format!("registry.local:5000/team/app-{}", (i + k) % POLICIES);
    let dir = format!("apps/group-{}/svc-{i}", i % 20);
    match i % 4 {
        0 => (
            format!("{dir}/deployment.yaml"),
            format!(
                "# service {i} — ünïcode comment\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}\n  namespace: ns-{}\nspec:\n  replicas: 2 # fixed\n  template:\n    metadata:\n      labels: {{app: svc-{i}}}\n    spec:\n      initContainers:\n        - name: migrate\n          image: {}:1.0.{i}   # same image\n      containers:\n        # main\n        - name: main\n          image: \"{}:1.0.{i}\"\n          env:\n            - {{name: MODE, value: prod}}\n        - name: sidecar\n          image: '{}:0.9'\n",
                i % 7,
                app(0),
                app(0),
                app(1)
            ),
        ),
        1 => (
            format!("{dir}/jobs.yaml"),
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg-{i}}}\ndata:\n  note: \"image {}:1.0 is mentioned only\"\n...\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job-{i}\nspec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{{name: run, image: {}:3.1.{i}}}]\n          restartPolicy: Never\n",
                app(0),
                app(2)
            ),
        ),
        2 => (
            format!("{dir}/kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\nimages:\n  # bumped by relbot\n  - name: {}\n    newTag: \"1.{i}.0\"\n  - name: {}\n    newTag: 0.{i}.1 # comment\n",
                app(3),
                app(4)
            ),
        ),
        _ => (
            format!("{dir}/release.yaml"),
            format!(
                "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: rel-{i}\nspec:\n  values:\n    image:\n      repository: {}\n      tag: 4.{i}.0 # relbot: policy=app-{}:tag\n",
                app(5),
                (i + 5) % POLICIES
            ),
        ),
    }
}

fn peak_memory() -> String {
    std::fs::read_to_string(Path::new("/proc/self/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unavailable".to_string())
}
