//! `relbot bump --dry-run` on the samples against the real `docker-registry`
//! (docker.io reached through it as a mirror): exactly the expected bumps,
//! files byte-identical outside the tag spans, nothing written. Also the
//! CLI's exit codes and JSON shape, through the real binary.

#[path = "support/bump_samples.rs"]
mod bump_samples;
#[path = "support/registry.rs"]
mod registry_support;

use std::process::Command;

use bump_samples::{EXPECTED_BUMPS, SAMPLE_TAGS, sample_file, write_sample_tree};
use registry_support::{Auth, Media, RealRegistry};
use relbot::progress::{Progress, ProgressEvent};
use relbot::release::bump::{BumpOptions, PolicyOutcome, run_bumps};
use relbot::release::registry::{RegistryClient, RegistryCredentials, RegistrySettings};

async fn seeded_registry() -> RealRegistry {
    let registry = RealRegistry::start(Auth::Anonymous).await;
    for (repository, tags) in SAMPLE_TAGS {
        registry.seed(repository, tags, Media::Docker).await;
    }
    registry
}

fn client_for(registry: &RealRegistry) -> RegistryClient {
    let mut settings = RegistrySettings::default();
    settings.set_host("docker.io", Some(&registry.host), false);
    RegistryClient::new(settings, RegistryCredentials::anonymous()).unwrap()
}

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn bump_dry_run_on_samples_proposes_exactly_the_expected_bumps() {
    let registry = seeded_registry().await;
    let tree = tempfile::tempdir().unwrap();
    write_sample_tree(tree.path(), "");
    let before = snapshot(tree.path());
    let loaded = relbot::config::load(&tree.path().join("relbot.yaml")).unwrap();
    let client = client_for(&registry);

    let report = run_bumps(
        &loaded,
        tree.path(),
        &client,
        None,
        &BumpOptions {
            only: vec![],
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    assert!(report.dry_run);
    let bumped: Vec<&str> = report.bumps().map(|p| p.policy.as_str()).collect();
    assert_eq!(bumped, ["django-api", "idaes", "pgbouncer", "postgres"]);
    let frontend = report
        .policies
        .iter()
        .find(|p| p.policy == "frontend")
        .unwrap();
    assert_eq!(frontend.outcome, PolicyOutcome::UpToDate);
    assert_eq!(frontend.current, ["0.0.12"]);

    for (policy, from, to, file, old, new) in EXPECTED_BUMPS {
        let line = report
            .policies
            .iter()
            .find(|p| p.policy == *policy)
            .unwrap();
        assert_eq!(line.outcome, PolicyOutcome::WouldBump, "{policy}");
        let plan = line.bump.as_ref().unwrap();
        assert_eq!(plan.from, [*from], "{policy}");
        assert_eq!(plan.to, *to, "{policy}");
        assert_eq!(plan.files.len(), 1, "{policy}: {:?}", plan.files);
        let changed = &plan.files[0];
        assert_eq!(changed.path, *file);
        assert_eq!(changed.changes.len(), 1);
        assert!(
            changed.changes[0].old.ends_with(old),
            "{:?}",
            changed.changes[0]
        );
        assert!(
            changed.changes[0].new.ends_with(new),
            "{:?}",
            changed.changes[0]
        );
        // Byte-exact outside the tag span: the only difference is the tag.
        let original = sample_file(file);
        assert_eq!(original.matches(old).count(), 1);
        assert_eq!(changed.new_text, original.replace(old, new), "{policy}");
    }
    // One tags/list per image (the real registry sends one page), nothing else.
    assert_eq!(report.requests.registry_pages, 5);
    assert_eq!(report.requests.registry_requests, 5);
    assert_eq!(report.requests.github_requests, 0);
    assert_eq!(before, snapshot(tree.path()), "a dry-run writes nothing");

    // The same client again: every page answers 304 (ETag), same result.
    // Progress follows the policy's steps.
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    let again = run_bumps(
        &loaded,
        tree.path(),
        &client,
        None,
        &BumpOptions {
            only: vec!["postgres".into()],
            dry_run: true,
            progress: Progress::to(std::sync::Arc::new(move |e: ProgressEvent| {
                sink.lock().unwrap().push(e)
            })),
        },
    )
    .await
    .unwrap();
    assert_eq!(again.policies.len(), 1);
    assert_eq!(again.policies[0].bump.as_ref().unwrap().to, "16.6");
    assert_eq!(again.requests.registry_requests, 1);
    let policy = || "postgres".to_string();
    let postgres_tags = SAMPLE_TAGS
        .iter()
        .find(|(repository, _)| *repository == "library/postgres")
        .map(|(_, tags)| tags.len())
        .unwrap();
    let events = events.lock().unwrap().clone();
    assert!(
        matches!(&events[0], ProgressEvent::PolicyStarted { policy: p, .. } if *p == policy()),
        "{events:#?}"
    );
    assert_eq!(
        events[1..],
        [
            ProgressEvent::TagsListed {
                policy: policy(),
                pages: 1,
                tags: postgres_tags,
            },
            ProgressEvent::RewritingFiles {
                policy: policy(),
                files: 1
            },
            ProgressEvent::PolicyFinished { policy: policy() },
        ],
        "dry-run: no push, no pull request"
    );
}

#[tokio::test]
async fn bump_dry_run_reaches_docker_io_through_the_configured_mirror() {
    let registry = seeded_registry().await;
    let tree = tempfile::tempdir().unwrap();
    write_sample_tree(
        tree.path(),
        &format!(
            "\nregistries:\n  - host: docker.io\n    mirror: {}\n",
            registry.host
        ),
    );
    let loaded = relbot::config::load(&tree.path().join("relbot.yaml")).unwrap();
    let client = RegistryClient::new(
        RegistrySettings::from_config(&loaded.config.registries),
        RegistryCredentials::anonymous(),
    )
    .unwrap();
    let report = run_bumps(
        &loaded,
        tree.path(),
        &client,
        None,
        &BumpOptions {
            only: vec!["django-api".into()],
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.policies[0].bump.as_ref().unwrap().to, "0.0.18");
}

fn relbot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(args)
        .env_remove("RELBOT_GITHUB_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bump_cli_dry_run_exit_codes_and_json_shape() {
    let registry = seeded_registry().await;
    let tree = tempfile::tempdir().unwrap();
    write_sample_tree(tree.path(), "");
    let source = tree.path().to_str().unwrap().to_string();
    let mirror = format!("docker.io={}", registry.host);

    // Bumps found → 1, JSON per policy.
    let (code, stdout, stderr) = relbot(&[
        "bump",
        "--dry-run",
        "--source",
        &source,
        "--registry-mirror",
        &mirror,
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["dryRun"], true);
    let policies = json["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 5);
    let django = policies
        .iter()
        .find(|p| p["policy"] == "django-api")
        .unwrap();
    assert_eq!(django["outcome"]["status"], "wouldBump");
    assert_eq!(django["image"], "docker.io/ahuora/django-api");
    assert_eq!(django["bump"]["from"], serde_json::json!(["0.0.17"]));
    assert_eq!(django["bump"]["to"], "0.0.18");
    assert_eq!(
        django["bump"]["files"][0]["path"],
        "platform/api/deployment.yaml"
    );
    assert_eq!(django["bump"]["files"][0]["changes"][0]["line"], 28);
    assert!(django["bump"]["files"][0].get("new_text").is_none());
    let frontend = policies.iter().find(|p| p["policy"] == "frontend").unwrap();
    assert_eq!(frontend["outcome"]["status"], "upToDate");
    assert!(json["requests"]["registryRequests"].as_u64().unwrap() >= 5);

    // Text output names policy, image, versions, files and lines.
    let (code, stdout, _) = relbot(&[
        "bump",
        "--dry-run",
        "--source",
        &source,
        "--registry-mirror",
        &mirror,
        "--policy",
        "postgres",
    ]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "postgres: docker.io/library/postgres 16.4 → 16.6 (platform/postgres/statefulset.yaml)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "platform/postgres/statefulset.yaml:23: image: postgres:16.4 → image: postgres:16.6"
        ),
        "{stdout}"
    );

    // Nothing to bump → 0.
    let (code, stdout, stderr) = relbot(&[
        "bump",
        "--dry-run",
        "--source",
        &source,
        "--registry-mirror",
        &mirror,
        "--policy",
        "frontend",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("frontend: docker.io/ahuora/frontend up to date (0.0.12)"),
        "{stdout}"
    );

    // Errors → 2: an unknown policy, an unreachable registry, a bad config.
    let (code, _, stderr) = relbot(&[
        "bump",
        "--dry-run",
        "--source",
        &source,
        "--registry-mirror",
        &mirror,
        "--policy",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no ImagePolicy named \"nope\""), "{stderr}");
    let closed = format!("docker.io=127.0.0.1:{}", registry_support_free_port());
    let (code, _, stderr) = relbot(&[
        "bump",
        "--dry-run",
        "--source",
        &source,
        "--registry-mirror",
        &closed,
        "--policy",
        "idaes",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("idaes"), "{stderr}");
    std::fs::write(
        tree.path().join("relbot.yaml"),
        "applications: [{name: x}]\n",
    )
    .unwrap();
    let (code, _, _) = relbot(&["bump", "--dry-run", "--source", &source]);
    assert_eq!(code, 2);
}

fn registry_support_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn bump_dry_run_leaves_latest_and_untagged_references_and_says_why() {
    let registry = seeded_registry().await;
    let tree = tempfile::tempdir().unwrap();
    write_sample_tree(tree.path(), "");
    let extra = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nightly\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: docker.io/ahuora/django-api:latest\n        - name: b\n          image: docker.io/ahuora/django-api\n";
    std::fs::write(tree.path().join("platform/nightly.yaml"), extra).unwrap();
    let loaded = relbot::config::load(&tree.path().join("relbot.yaml")).unwrap();
    let report = run_bumps(
        &loaded,
        tree.path(),
        &client_for(&registry),
        None,
        &BumpOptions {
            only: vec!["django-api".into()],
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let line = &report.policies[0];
    // The versioned references still move; the others are named with a reason.
    let plan = line.bump.as_ref().expect("the versioned references move");
    assert_eq!(plan.to, "0.0.18");
    assert!(
        plan.files.iter().all(|f| f.path != "platform/nightly.yaml"),
        "{:?}",
        plan.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    let held: Vec<(Option<&str>, &str)> = line
        .held
        .iter()
        .map(|h| (h.tag.as_deref(), h.reason.as_str()))
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.iter()
            .any(|(t, r)| *t == Some("latest") && r.starts_with("latest is not a version")),
        "{held:?}"
    );
    assert!(
        held.iter()
            .any(|(t, r)| t.is_none() && r.contains("no tag (which means latest)")),
        "{held:?}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["policies"][0]["held"][0]["reason"], held[0].1);
}
