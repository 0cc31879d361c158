//! `relbot serve` end to end, in-process peers and the real binary: a real
//! git repository (file://), the API-server emulator (or the cluster named by
//! RELBOT_TEST_KUBECONFIG), and `relbot serve` on a free loopback port.
//!
//! Every test starts its own server with its own namespace (also the status
//! and Lease namespace), so tests run in parallel.

#[path = "support/chromium.rs"]
mod chromium;
#[path = "support/git.rs"]
mod git_support;
#[path = "support/github_double.rs"]
mod github_double;
#[path = "support/registry.rs"]
mod registry_support;
#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/standin.rs"]
mod standin;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use git_support::free_port;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serve_support::{
    REGISTRY_TOKEN, Server, WEB_DEPLOYMENT, WEB_POLICY, World, bump_peers, config_map_yaml,
    push_body, sign,
};
use standin::set_image_failing;
use tempfile::TempDir;

impl World {
    /// `apps` applications, each with one ConfigMap `<app>-settings` (value "v1").
    async fn new(test: &str, apps: &[&str]) -> World {
        World::with(test, apps, "", &[]).await
    }

    /// Commits a new value for `<app>-settings` and pushes it; returns the commit.
    fn change(&self, app: &str, value: &str) -> String {
        let sha = self.work.commit_file(
            &format!("apps/{app}/settings.yaml"),
            &config_map_yaml(&format!("{app}-settings"), value),
            &format!("{app}: {value}"),
        );
        self.work.git(&["push", "-q", "origin", "main"]);
        sha
    }

    /// A server on a free port; every start shares one cache directory.
    fn start(&self) -> Server {
        let port = free_port();
        let cache = self.dir.path().join("cache");
        Server::start(self, port, &format!("serve-e2e-{port}"), &cache)
    }

    async fn value(&self, app: &str) -> Option<String> {
        let api: Api<ConfigMap> = Api::namespaced(self.tc.client(), self.tc.namespace());
        api.get_opt(&format!("{app}-settings"))
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("value").cloned())
    }

    async fn wait_value(&self, server: &Server, app: &str, value: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.value(app).await;
            if now.as_deref() == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{app}-settings is {now:?}, expected {value:?} within {timeout:?}; log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn lease_holder(&self) -> Option<String> {
        let api: Api<Lease> = Api::namespaced(self.tc.client(), self.tc.namespace());
        api.get_opt("relbot")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty())
    }
}

impl Server {
    async fn post_github(&self, event: &str, delivery: &str, body: &[u8], signature: &str) -> u16 {
        self.try_post_github(event, delivery, body, signature)
            .await
            .expect("webhook delivered")
    }

    async fn try_post_github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<u16, reqwest::Error> {
        Ok(self
            .http
            .post(self.url("/webhooks/github"))
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?
            .status()
            .as_u16())
    }

    async fn metrics(&self) -> Metrics {
        let (status, text) = self.get("/metrics").await.expect("/metrics answers");
        assert_eq!(status, 200);
        Metrics::parse(&text)
    }

    /// Sends SIGTERM and waits for the exit; returns (exit code, elapsed).
    fn terminate(&mut self) -> (Option<i32>, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(40) {
                let _ = child.kill();
                let _ = child.wait();
                return (None, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Prometheus text, parsed strictly enough to catch malformed output.
struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let line_re = regex::Regex::new(
            r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? ([^ ]+)$"#,
        )
        .unwrap();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                assert!(
                    rest.starts_with(" HELP ") || rest.starts_with(" TYPE "),
                    "bad comment line: {line}"
                );
                continue;
            }
            let caps = line_re
                .captures(line)
                .unwrap_or_else(|| panic!("not Prometheus text: {line:?}"));
            let value: f64 = match &caps[4] {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let key = format!("{}{}", &caps[1], caps.get(2).map_or("", |m| m.as_str()));
            samples.insert(key, value);
        }
        Metrics { samples }
    }

    /// Sum of every sample of `name` whose labels contain all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(key, _)| {
                key.split('{').next() == Some(name)
                    && labels
                        .iter()
                        .all(|(k, v)| key.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_a_signed_push_is_applied_and_forged_replayed_or_oversize_ones_change_nothing() {
    let world = World::new("serve-push", &["site"]).await;
    let mut server = world.start();
    server.wait_ready().await;
    // The startup sync applies the initial state.
    world
        .wait_value(&server, "site", "v1", Duration::from_secs(30))
        .await;

    // A signed push webhook → the change is applied.
    let before = world.work.head();
    let v2 = world.change("site", "v2");
    let body = push_body(&before, &v2, &["apps/site/settings.yaml"]);
    let status = server
        .post_github("push", "delivery-1", &body, &sign(&body))
        .await;
    assert_eq!(status, 202, "log:\n{}", server.log());
    world
        .wait_value(&server, "site", "v2", Duration::from_secs(20))
        .await;

    // Git moves on, but no valid webhook says so: nothing may change.
    let v3 = world.change("site", "v3");
    let body3 = push_body(&v2, &v3, &["apps/site/settings.yaml"]);
    let forged = server
        .post_github("push", "delivery-2", &body3, &sign(b"another body"))
        .await;
    assert_eq!(forged, 401);
    let replay = server
        .post_github("push", "delivery-1", &body, &sign(&body))
        .await;
    assert_eq!(replay, 200, "a replay is acknowledged and ignored");
    let mut huge = body3.clone();
    huge.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    // The server answers 413 as soon as the body passes its limit and closes
    // the connection: a client still writing may see that as a broken pipe.
    let oversize = server
        .try_post_github("push", "delivery-3", &huge, &sign(&huge))
        .await;
    assert!(
        matches!(oversize, Ok(413)) || oversize.as_ref().is_err_and(|e| e.is_request()),
        "an oversize delivery is refused: {oversize:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(world.value("site").await.as_deref(), Some("v2"));
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.sum(
            "relbot_webhook_deliveries_total",
            &[("verdict", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        metrics.sum(
            "relbot_webhook_deliveries_total",
            &[("verdict", "duplicate")]
        ),
        1.0
    );
    assert_eq!(
        metrics.sum(
            "relbot_webhook_deliveries_total",
            &[("verdict", "too_large")]
        ),
        1.0
    );

    // The real delivery for v3 then applies it.
    let status = server
        .post_github("push", "delivery-4", &body3, &sign(&body3))
        .await;
    assert_eq!(status, 202);
    world
        .wait_value(&server, "site", "v3", Duration::from_secs(20))
        .await;
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0), "log:\n{}", server.log());
    world.tc.cleanup().await;
}

/// Every "update started" is followed by its "update finished" before the next starts.
fn assert_one_update_at_a_time(log: &str) -> usize {
    let mut running = false;
    let mut runs = 0;
    for line in log.lines() {
        if line.contains("update started") {
            assert!(!running, "two updates overlapped; log:\n{log}");
            running = true;
            runs += 1;
        } else if line.contains("update finished") {
            assert!(
                running,
                "an update finished that never started; log:\n{log}"
            );
            running = false;
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_twenty_concurrent_webhooks_run_one_update_at_a_time_and_lose_nothing() {
    let names: Vec<String> = (0..20).map(|i| format!("a{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::new("serve-concurrent", &refs).await;
    let server = world.start();
    server.wait_ready().await;
    for app in &refs {
        world
            .wait_value(&server, app, "v1", Duration::from_secs(60))
            .await;
    }

    // Twenty pushes, one per application, then all twenty deliveries at once.
    let mut deliveries = Vec::new();
    for app in &refs {
        let before = world.work.head();
        let after = world.change(app, "v2");
        let path = format!("apps/{app}/settings.yaml");
        deliveries.push((app.to_string(), push_body(&before, &after, &[&path])));
    }
    let statuses = futures::future::join_all(deliveries.iter().map(|(app, body)| {
        let server = &server;
        async move {
            server
                .post_github("push", &format!("push-{app}"), body, &sign(body))
                .await
        }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");

    for app in &refs {
        world
            .wait_value(&server, app, "v2", Duration::from_secs(60))
            .await;
    }
    // Wait for the queue to settle, then check the log and the counters.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server.get("/api/status").await.expect("/api/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["running"] == false && status["pending"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never settled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = assert_one_update_at_a_time(&server.log());
    let metrics = server.metrics().await;
    let triggers = metrics.sum("relbot_triggers_total", &[("kind", "sync")]);
    let coalesced = metrics.sum("relbot_triggers_coalesced_total", &[("kind", "sync")]);
    assert_eq!(triggers, 21.0, "startup plus twenty webhooks");
    assert_eq!(
        metrics.sum(
            "relbot_webhook_deliveries_total",
            &[("verdict", "accepted")]
        ),
        20.0
    );
    assert!(
        (runs as f64) < triggers && coalesced >= 1.0,
        "{runs} runs for {triggers} triggers ({coalesced} coalesced)"
    );
    world.tc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sigterm_mid_sync_exits_cleanly_releases_the_lease_and_the_next_start_converges() {
    let names: Vec<String> = (0..10).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let world = World::new("serve-sigterm", &refs).await;
    let Some(sim) = world.tc.require_emulator("fault injection (slow requests)") else {
        return;
    };
    let mut server = world.start();
    server.wait_ready().await;
    for app in &refs {
        world
            .wait_value(&server, app, "v1", Duration::from_secs(60))
            .await;
    }
    assert_eq!(
        world.lease_holder().await.as_deref(),
        Some(format!("serve-e2e-{}", server.port).as_str())
    );

    // One commit changes every application; the API server turns slow.
    let before = world.work.head();
    let mut paths = Vec::new();
    for app in &refs {
        let path = format!("apps/{app}/settings.yaml");
        world
            .work
            .write(&path, &config_map_yaml(&format!("{app}-settings"), "v2"));
        paths.push(path);
    }
    let after = world.work.commit("all: v2");
    world.work.git(&["push", "-q", "origin", "main"]);
    for _ in 0..60 {
        sim.faults().stall_next(Duration::from_millis(300));
    }
    let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let body = push_body(&before, &after, &path_refs);
    assert_eq!(
        server
            .post_github("push", "sigterm-1", &body, &sign(&body))
            .await,
        202
    );
    // SIGTERM once the update is under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("tickets=2..=2") {
        assert!(
            Instant::now() < deadline,
            "the update never started; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, elapsed) = server.terminate();
    assert_eq!(code, Some(0), "log:\n{}", server.log());
    assert!(elapsed < Duration::from_secs(25), "drain took {elapsed:?}");
    assert!(server.log().contains("drained"), "log:\n{}", server.log());
    assert_eq!(world.lease_holder().await, None, "the Lease was released");

    // The next start converges.
    sim.faults().clear();
    let server = world.start();
    server.wait_ready().await;
    for app in &refs {
        world
            .wait_value(&server, app, "v2", Duration::from_secs(60))
            .await;
    }
    world.tc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_metrics_move_and_the_status_page_shows_the_applications() {
    let world = World::new("serve-observe", &["frontend", "backend"]).await;
    let server = world.start();
    server.wait_ready().await;
    world
        .wait_value(&server, "frontend", "v1", Duration::from_secs(30))
        .await;
    world
        .wait_value(&server, "backend", "v1", Duration::from_secs(30))
        .await;

    // /metrics parses and reflects the startup sync.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let m = server.metrics().await;
        if m.sum("relbot_syncs_total", &[("application", "backend")]) >= 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no sync counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first.sum("relbot_ready", &[]), 1.0);
    assert_eq!(first.sum("relbot_lease_held", &[]), 1.0);
    assert_eq!(
        first.sum(
            "relbot_objects",
            &[("application", "frontend"), ("sync_status", "Synced")]
        ),
        1.0
    );
    let frontend_syncs = first.sum("relbot_syncs_total", &[("application", "frontend")]);

    // A push moves the sync and webhook counters.
    let before = world.work.head();
    let after = world.change("frontend", "v2");
    let body = push_body(&before, &after, &["apps/frontend/settings.yaml"]);
    assert_eq!(
        server
            .post_github("push", "observe-1", &body, &sign(&body))
            .await,
        202
    );
    world
        .wait_value(&server, "frontend", "v2", Duration::from_secs(20))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = server.metrics().await;
        if m.sum("relbot_syncs_total", &[("application", "frontend")]) > frontend_syncs {
            assert_eq!(
                m.sum(
                    "relbot_webhook_deliveries_total",
                    &[("event", "push"), ("verdict", "accepted")]
                ),
                1.0
            );
            assert!(
                m.sum(
                    "relbot_sync_duration_seconds_count",
                    &[("application", "frontend")]
                ) >= 2.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frontend sync was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // /api/status and `relbot status --server`.
    let (_, body) = server.get("/api/status").await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["revision"], after.as_str(), "{status}");
    let apps: Vec<&str> = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["backend", "frontend"]);
    let cli = Command::new(env!("CARGO_BIN_EXE_relbot"))
        .args(["status", "--server", &server.url(""), "-o", "json"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed["apps"][1]["sync"], "Synced");

    // The status page in a real browser.
    let Some(chromium) = chromium::find() else {
        println!("skipped: the status page in Chromium (install Debian's `chromium` package)");
        world.tc.cleanup().await;
        return;
    };
    let profile = TempDir::new().unwrap();
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(server.url("/"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    for name in ["frontend", "backend"] {
        assert!(dom.contains(name), "{name} missing from the page:\n{dom}");
    }
    assert!(dom.contains(&after[..7]), "the revision is shown:\n{dom}");
    world.tc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_a_registry_webhook_opens_one_bump_pr() {
    const REPO: &str = "acme/cluster-config";
    // CI must pass first: auto-merge waits, so the PR stays pending.
    let (registry, gh) = bump_peers(REPO).await;
    let (deployment, policy) = (WEB_DEPLOYMENT, WEB_POLICY);
    let extra = format!(
        "policies: policies\nregistries:\n  - host: docker.io\n    mirror: {}\n",
        registry.host
    );
    let mut world = World::with(
        "serve-bump",
        &["web"],
        &extra,
        &[
            ("apps/web/deploy.yaml", deployment),
            ("policies/web.yaml", policy),
        ],
    )
    .await;
    gh.attach_git(REPO, world.bare.path());
    world.env = vec![
        ("RELBOT_GITHUB_API_URL".into(), gh.url()),
        (
            "RELBOT_GITHUB_TOKEN".into(),
            github_double::GitHubDouble::TOKEN.into(),
        ),
    ];
    let server = world.start();
    server.wait_ready().await;
    world
        .wait_value(&server, "web", "v1", Duration::from_secs(30))
        .await;
    assert!(gh.pulls(REPO).is_empty(), "no bump before the webhook");

    // The registry says 1.1.0 was pushed (a distribution notification).
    let notification = serde_json::json!({"events": [{
        "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "repository": "acme/web", "tag": "1.1.0"},
        "request": {"host": "docker.io"}
    }]});
    let send = || async {
        server
            .http
            .post(server.url(&format!("/webhooks/registry/{REGISTRY_TOKEN}")))
            .json(&notification)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(send().await, 202, "log:\n{}", server.log());
    let deadline = Instant::now() + Duration::from_secs(60);
    while gh.pulls(REPO).is_empty() {
        assert!(Instant::now() < deadline, "no PR; log:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same notification again (registries retry) changes nothing.
    assert_eq!(send().await, 202);
    let wrong = server
        .http
        .post(server.url("/webhooks/registry/not-the-token"))
        .json(&notification)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(wrong, 401);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server.get("/api/status").await.unwrap();
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["running"] == false && status["pending"] == false {
            assert_eq!(
                status["pending_prs"].as_array().map(Vec::len),
                Some(1),
                "{status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the queue never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1, "exactly one bump PR: {pulls:?}");
    assert!(pulls[0].title.contains("1.1.0"), "{}", pulls[0].title);
    assert!(!pulls[0].merged, "auto-merge waits for CI");
    let metrics = server.metrics().await;
    assert_eq!(
        metrics.sum("relbot_pull_requests_total", &[("action", "opened")]),
        1.0
    );
    assert!(
        metrics.sum(
            "relbot_registry_requests_total",
            &[("registry", "docker.io"), ("result", "ok")]
        ) >= 1.0,
        "registry requests are counted"
    );
    world.tc.cleanup().await;
}

/// serve pointed at a namespace that does not exist for its Lease (outside
/// the cluster, before deploy/ ran): one clear error naming the namespace and
/// what to do, no API dump, and `/readyz` says it is waiting for the Lease.
#[tokio::test]
async fn serve_without_its_lease_namespace_says_so_once_and_is_not_ready() {
    let mut world = World::new("serve-no-lease-ns", &["idle"]).await;
    let missing = format!("{}-absent", world.tc.namespace());
    world
        .env
        .push(("RELBOT_LEASE_NAMESPACE".into(), missing.clone()));
    let server = world.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut readyz = None;
    while Instant::now() < deadline {
        readyz = server.get("/readyz").await;
        if let Some((503, body)) = &readyz
            && body.trim() == "waiting for: lease"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        readyz,
        Some((503, "waiting for: lease\n".to_string())),
        "log:\n{}",
        server.log()
    );
    // Several retry periods later the error is still said once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = server.log();
    let said = log
        .lines()
        .filter(|l| l.contains(&format!("namespace {missing} does not exist")))
        .count();
    assert_eq!(
        said, 1,
        "the Lease error once, naming the namespace:\n{log}"
    );
    assert!(log.contains("--lease-namespace"), "{log}");
    assert!(!log.contains("Status {"), "no API dump:\n{log}");
    assert_eq!(server.get("/readyz").await.map(|r| r.0), Some(503));
}

/// A bump relbot merged leaves its Deployment unable to start (the image
/// never pulls: ImagePullBackOff from the kubelet stand-in, a Deployment past
/// its progress deadline): once the application has been Degraded for the
/// policy's grace period, relbot opens a revert PR naming the Deployment and
/// why, merges it (the Degraded gate holds bumps, not reverts), and the
/// application runs the old tag again, Healthy. The failed version is not
/// proposed again; a newer tag is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rolls_back_a_merged_bump_that_leaves_its_application_degraded() {
    const REPO: &str = "acme/cluster-config";
    // The failing-images list is shared by every test on a cluster: this
    // test's image name is its own.
    let repository = format!("acme/rollback-web-{}", free_port());
    let image = format!("docker.io/{repository}");
    let registry = registry_support::RealRegistry::start(registry_support::Auth::Anonymous).await;
    registry
        .seed(
            &repository,
            &["1.0.0", "1.1.0"],
            registry_support::Media::Docker,
        )
        .await;
    let gh = github_double::GitHubDouble::start().await;
    gh.add_repo(REPO, "main");

    // A short progress deadline: a real Deployment controller calls the
    // rollout failed after it (kubesim does at once).
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {{ app: web }}\n  template:\n    metadata:\n      labels: {{ app: web }}\n    spec:\n      containers:\n        - name: web\n          image: {image}:1.0.0 # the web front end\n"
    );
    let policy = format!(
        "apiVersion: relbot.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{ name: web }}\nspec:\n  image: {image}\n  semver: \">=1.0.0 <2.0.0\"\n  files: [ \"apps/web/**/*.yaml\" ]\n  application: web\n  rollback: {{ gracePeriod: 3s }}\n"
    );
    let extra = format!(
        "policies: policies\nregistries:\n  - host: docker.io\n    mirror: {}\n",
        registry.host
    );
    let mut world = World::with(
        "serve-rollback",
        &["web"],
        &extra,
        &[
            ("apps/web/deploy.yaml", &deployment),
            ("policies/web.yaml", &policy),
        ],
    )
    .await;
    set_image_failing(world.tc.client(), &format!("{image}:1.1.0"), true).await;
    gh.attach_git(REPO, world.bare.path());
    world.env = vec![
        ("RELBOT_GITHUB_API_URL".into(), gh.url()),
        (
            "RELBOT_GITHUB_TOKEN".into(),
            github_double::GitHubDouble::TOKEN.into(),
        ),
    ];
    let server = world.start();
    server.wait_ready().await;
    world
        .wait_value(&server, "web", "v1", Duration::from_secs(30))
        .await;

    let notify = |tag: &str| {
        serde_json::json!({"events": [{
            "action": "push",
            "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "repository": repository, "tag": tag},
            "request": {"host": "docker.io"}
        }]})
    };
    let send = |body: serde_json::Value| {
        let server = &server;
        async move {
            server
                .http
                .post(server.url(&format!("/webhooks/registry/{REGISTRY_TOKEN}")))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let wait_for = |what: &'static str, done: &dyn Fn(&[github_double::PullState]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pulls = gh.pulls(REPO);
            if done(&pulls) {
                return pulls;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen; PRs: {pulls:#?}\nlog:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let live_image = || async {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(world.tc.client(), world.tc.namespace());
        api.get_opt("web")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.spec)
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
    };

    // 1.1.0 is pushed: relbot bumps to it and merges (no checks required).
    assert_eq!(send(notify("1.1.0")).await, 202, "log:\n{}", server.log());
    let pulls = tokio::task::block_in_place(|| {
        wait_for("the bump to 1.1.0 merging", &|p| {
            p.iter().any(|p| p.title.contains("1.1.0") && p.merged)
        })
    });
    let bump = pulls.iter().find(|p| p.title.contains("1.1.0")).unwrap();
    assert_eq!(bump.head_ref, "relbot/web");

    // The new image never becomes ready; after the grace period the revert
    // is opened and merged.
    let pulls = tokio::task::block_in_place(|| {
        wait_for("the revert merging", &|p| {
            p.iter()
                .any(|p| p.title.starts_with("revert(deps)") && p.merged)
        })
    });
    assert_eq!(pulls.len(), 2, "one bump, one revert: {pulls:#?}");
    let revert = pulls
        .iter()
        .find(|p| p.title.starts_with("revert(deps)"))
        .unwrap();
    assert_eq!(
        revert.title,
        "revert(deps): roll back web from 1.1.0 to 1.0.0"
    );
    let body = revert.body.clone().unwrap_or_default();
    assert!(
        body.contains(&format!(
            "merged in #{} left application `web` Degraded",
            bump.number
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "`Deployment.apps {}/web`: Degraded",
            world.tc.namespace()
        )),
        "the body names the Deployment: {body}"
    );
    assert!(body.contains("ProgressDeadlineExceeded"), "and why: {body}");
    assert!(
        body.contains(&format!(
            "`image: {image}:1.1.0 # the web front end` → `image: {image}:1.0.0 # the web front end`"
        )),
        "only the image field changes: {body}"
    );

    // The cluster runs 1.0.0 again and the application is Healthy.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = live_image().await;
        let (_, status) = server.get("/api/status").await.unwrap_or_default();
        let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        let health = status["apps"]
            .as_array()
            .and_then(|apps| apps.iter().find(|a| a["name"] == "web"))
            .map(|a| a["health"].clone());
        if running.as_deref() == Some(&format!("{image}:1.0.0"))
            && health == Some(serde_json::json!("Healthy"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back on 1.0.0 and Healthy: image {running:?}, health {health:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 1.1.0 again (a retried notification): nothing opened. The leader
    // knows it proposed 1.1.0 already and drops the trigger as no news; a
    // run that does start (after a restart, say) is held by the revert.
    assert_eq!(send(notify("1.1.0")).await, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = server
            .log()
            .contains("held back: a revert undid this version");
        let dropped = server
            .metrics()
            .await
            .sum("relbot_triggers_without_news_total", &[])
            >= 1.0;
        let (_, body) = server.get("/api/status").await.unwrap();
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if (held || dropped) && status["running"] == false && status["pending"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retried 1.1.0 was neither dropped nor held; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gh.pulls(REPO).len(), 2, "{:#?}", gh.pulls(REPO));

    // A newer tag lifts the hold.
    registry
        .seed(&repository, &["1.2.0"], registry_support::Media::Docker)
        .await;
    assert_eq!(send(notify("1.2.0")).await, 202);
    let pulls = tokio::task::block_in_place(|| {
        wait_for("a bump to 1.2.0", &|p| {
            p.iter().any(|p| p.title.contains("update web to 1.2.0"))
        })
    });
    assert_eq!(pulls.len(), 3, "{pulls:#?}");

    set_image_failing(world.tc.client(), &format!("{image}:1.1.0"), false).await;
    world.tc.cleanup().await;
}

/// The sample's worker (a Deployment of 2 replicas and its Service), as in
/// manifests-sample/platform/worker.
const SAMPLE_WORKER: &str = include_str!("../manifests-sample/platform/worker/deployment.yaml");
const SAMPLE_WORKER_SERVICE: &str =
    include_str!("../manifests-sample/platform/worker/service.yaml");

/// Reads an SSE stream until an event's data satisfies `wanted`; returns
/// every data line seen.
async fn read_events(
    response: &mut reqwest::Response,
    timeout: Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut buffer = String::new();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no wanted event within {timeout:?}; saw {seen:?}"
        );
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no wanted event within {timeout:?}; saw {seen:?}"))
            .expect("the event stream stays open")
            .expect("the event stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let value: serde_json::Value =
                        serde_json::from_str(data.trim()).expect("event data is JSON");
                    let done = wanted(&value);
                    seen.push(value);
                    if done {
                        return seen;
                    }
                }
            }
        }
    }
}

/// The status pages against a real server process: the sample's objects on
/// the overview and the application page (in Chromium too: DOM and
/// screenshot), the JSON API, and a live update over SSE after a push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_status_pages_show_the_samples_objects_json_and_live_updates() {
    const APP: &str = "storefront";
    let world = World::with(
        "serve-pages",
        &[APP],
        "",
        &[
            ("apps/storefront/worker.yaml", SAMPLE_WORKER),
            ("apps/storefront/worker-service.yaml", SAMPLE_WORKER_SERVICE),
        ],
    )
    .await;
    let ns = world.tc.namespace().to_string();
    let server = world.start();
    server.wait_ready().await;
    let head = world.work.head();

    // The startup run finishes: its result and run are on the page's JSON.
    let deadline = Instant::now() + Duration::from_secs(60);
    let app = loop {
        let (code, body) = server
            .get(&format!("/api/v1/applications/{APP}"))
            .await
            .expect("the JSON answers");
        // 404 until the first fetch has named the applications.
        assert!(code == 200 || code == 404, "{code}: {body}");
        let app: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{code} {body:?}: {e}\nlog:\n{}", server.log()));
        if code == 200
            && app["runs"].as_array().is_some_and(|r| !r.is_empty())
            && app["totalObjects"] == 3
        {
            break app;
        }
        assert!(
            Instant::now() < deadline,
            "no finished run within 60 s: {app}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let objects = app["objects"].as_array().unwrap();
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap_or_else(|| panic!("no Deployment: {app}"));
    assert_eq!(deployment["name"], "idaes-worker");
    assert_eq!(deployment["namespace"], ns.as_str());
    assert_eq!(deployment["group"], "apps");
    assert!(deployment["health"].is_string(), "{deployment}");
    let source = deployment["source"].as_str().unwrap();
    assert!(
        source.starts_with("apps/storefront/worker.yaml:"),
        "{source}"
    );
    let line = source.rsplit(':').next().unwrap();
    assert_eq!(
        deployment["sourceUrl"],
        format!(
            "https://github.com/acme/cluster-config/blob/{head}/apps/storefront/worker.yaml#L{line}"
        ),
        "the source line is linked at the synced revision"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "Service" && o["name"] == "idaes-worker")
    );
    assert_eq!(app["runs"][0]["trigger"], "startup", "{app}");
    assert_eq!(app["runs"][0]["revision"], head.as_str());
    assert!(app["counts"]["applied"].as_u64().unwrap() >= 3, "{app}");

    let (_, body) = server.get("/api/v1/applications").await.unwrap();
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(overview["applications"][0]["name"], APP);
    assert_eq!(
        overview["applications"][0]["revisionUrl"],
        format!("https://github.com/acme/cluster-config/commit/{head}")
    );
    assert_eq!(overview["server"]["leader"], true);
    assert_eq!(
        overview["server"]["leaderName"],
        format!("serve-e2e-{}", server.port)
    );
    let (missing, _) = server.get("/api/v1/applications/nope").await.unwrap();
    assert_eq!(missing, 404);

    // Plain and small: both pages under 50 KB, every asset from this server.
    for path in ["/".to_string(), format!("/applications/{APP}")] {
        let response = server.http.get(server.url(&path)).send().await.unwrap();
        let csp = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        let html = response.text().await.unwrap();
        assert!(html.len() < 50 * 1024, "{path}: {} bytes", html.len());
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let target = &html[i + attr.len()..];
                assert!(
                    target.starts_with('/') || target.starts_with("https://github.com/"),
                    "{path}: an external asset or link: {}",
                    &target[..target.len().min(60)]
                );
            }
        }
        println!("page {path}: {} bytes", html.len());
    }

    // Live: a push shows up on the event stream as started, then finished.
    let mut events = server
        .http
        .get(server.url("/api/v1/events"))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    read_events(&mut events, Duration::from_secs(10), |e| {
        e["kind"] == "hello"
    })
    .await;
    let after = world.change(APP, "v2");
    let body = push_body(&head, &after, &["apps/storefront/settings.yaml"]);
    assert_eq!(
        server
            .post_github("push", "pages-1", &body, &sign(&body))
            .await,
        202
    );
    let seen = read_events(&mut events, Duration::from_secs(60), |e| {
        e["kind"] == "finished" && e["application"] == APP && e["revision"] == after.as_str()
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| e["kind"] == "started" && e["application"] == APP),
        "a started event comes first: {seen:?}"
    );
    drop(events);

    // In a real browser.
    let Some(chromium) = chromium::find() else {
        println!("skipped: the status pages in Chromium (install Debian's `chromium` package)");
        world.tc.cleanup().await;
        return;
    };
    let chromium_for = chromium.clone();
    let overview_url = server.url("/");
    let app_url = server.url(&format!("/applications/{APP}"));
    let (overview_dom, app_dom) = tokio::task::spawn_blocking({
        let (overview_url, app_url) = (overview_url.clone(), app_url.clone());
        move || {
            (
                chromium::dump_dom(&chromium_for, &overview_url),
                chromium::dump_dom(&chromium_for, &app_url),
            )
        }
    })
    .await
    .unwrap();
    assert!(
        overview_dom.contains(&format!("<tr data-app=\"{APP}\">")),
        "the application's row:\n{overview_dom}"
    );
    assert!(
        overview_dom.contains(&after[..12]),
        "the new revision:\n{overview_dom}"
    );
    for row in [
        format!("<td>Deployment.apps</td><th scope=\"row\">{ns}/idaes-worker</th>"),
        format!("<td>Service</td><th scope=\"row\">{ns}/idaes-worker</th>"),
        format!("<td>ConfigMap</td><th scope=\"row\">{ns}/storefront-settings</th>"),
    ] {
        assert!(app_dom.contains(&row), "{row} missing:\n{app_dom}");
    }
    assert!(
        app_dom.contains("<h2 id=\"runs\">Recent runs</h2>"),
        "{app_dom}"
    );
    assert!(
        app_dom.contains("data-live=\"conn"),
        "the page's own script ran (the policy lets it):\n{app_dom}"
    );

    // Live inside the browser: a push changes the open page in place (a
    // marker set on the page survives, so it was not reloaded).
    let mut live = tokio::task::spawn_blocking({
        let (chromium, app_url) = (chromium.clone(), app_url.clone());
        move || {
            let mut page = chromium::LivePage::open(&chromium, &app_url);
            let connected = page.wait_until(
                "!!document.body && document.body.getAttribute('data-live') === 'connected'",
                Duration::from_secs(30),
            );
            assert!(connected, "the page's event stream did not connect");
            page.eval("window.relbotNotReloaded = true");
            page
        }
    })
    .await
    .unwrap();
    let before = after.clone();
    let after = world.change(APP, "v3");
    let body = push_body(&before, &after, &["apps/storefront/settings.yaml"]);
    assert_eq!(
        server
            .post_github("push", "pages-2", &body, &sign(&body))
            .await,
        202
    );
    let short = after[..12].to_string();
    let (updated, not_reloaded, main_text) = tokio::task::spawn_blocking(move || {
        let updated = live.wait_until(
            &format!("!!document.querySelector('main') && document.querySelector('main').textContent.includes('{short}')"),
            Duration::from_secs(60),
        );
        (
            updated,
            live.eval("window.relbotNotReloaded === true"),
            live.eval("document.querySelector('main').textContent"),
        )
    })
    .await
    .unwrap();
    assert!(updated, "the open page never showed {after}:\n{main_text}");
    assert_eq!(not_reloaded, true, "the page reloaded instead of updating");

    let shots = TempDir::new().unwrap();
    let (overview_png, app_png) = (
        shots.path().join("status-overview.png"),
        shots.path().join("status-application.png"),
    );
    let sizes = tokio::task::spawn_blocking({
        let (overview_png, app_png) = (overview_png.clone(), app_png.clone());
        move || {
            (
                chromium::screenshot(&chromium, &overview_url, &overview_png, 1280, 720),
                chromium::screenshot(&chromium, &app_url, &app_png, 1280, 900),
            )
        }
    })
    .await
    .unwrap();
    println!(
        "screenshots: overview {} bytes, application {} bytes",
        sizes.0, sizes.1
    );
    for size in [sizes.0, sizes.1] {
        // A blank page compresses to a few KB; a page with its tables is
        // larger, and no screenshot of a 50 KB page reaches 2 MB.
        assert!(
            (15_000..2_000_000).contains(&size),
            "screenshot of {size} bytes"
        );
    }
    // `RELBOT_DOCS_SCREENSHOTS=1` refreshes the pictures in docs/.
    if std::env::var_os("RELBOT_DOCS_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&overview_png, docs.join("status-overview.png")).unwrap();
        std::fs::copy(&app_png, docs.join("status-application.png")).unwrap();
    }
    world.tc.cleanup().await;
}

/// `github.commitStatuses`: each sync of a revision sets `relbot/<app>` on
/// its commit, pending first, then the outcome with a link to the page; a
/// status GitHub refuses is counted and the sync goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_commit_statuses_report_each_sync_on_its_commit() {
    const REPO: &str = "acme/cluster-config";
    const APP: &str = "checkout";
    let gh = github_double::GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    let mut world = World::new("serve-statuses", &[APP]).await;
    gh.attach_git(REPO, world.bare.path());
    let config = std::fs::read_to_string(world.config_path()).unwrap().replace(
        "github:\n  repository: acme/cluster-config\n",
        "github:\n  repository: acme/cluster-config\n  commitStatuses: true\n  statusPageUrl: https://relbot.example/\n",
    );
    std::fs::write(world.config_path(), config).unwrap();
    world.env = vec![
        ("RELBOT_GITHUB_API_URL".into(), gh.url()),
        (
            "RELBOT_GITHUB_TOKEN".into(),
            github_double::GitHubDouble::TOKEN.into(),
        ),
    ];
    let head = world.work.head();
    let server = world.start();
    server.wait_ready().await;
    let statuses_of = |sha: &str| -> Vec<serde_json::Value> {
        gh.commit_statuses(REPO)
            .into_iter()
            .filter(|(s, _)| s == sha)
            .map(|(_, status)| status)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // Pending while syncing (and while rolling out), then the verdict.
    let settled = |statuses: &[serde_json::Value]| statuses.iter().any(|s| s["state"] != "pending");
    while !settled(&statuses_of(&head)) {
        assert!(
            Instant::now() < deadline,
            "no finished status on {head}: {:?}\nlog:\n{}",
            gh.commit_statuses(REPO),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = statuses_of(&head);
    let verdict = first.last().unwrap();
    assert_eq!(first[0]["state"], "pending", "{first:?}");
    assert_eq!(verdict["state"], "success", "{first:?}");
    for status in &first {
        assert_eq!(status["context"], format!("relbot/{APP}"));
        assert_eq!(
            status["target_url"],
            format!("https://relbot.example/applications/{APP}")
        );
    }
    assert!(
        verdict["description"]
            .as_str()
            .unwrap()
            .starts_with("synced, Healthy"),
        "{first:?}"
    );

    // Looked at again on the same commit (as a poll would): its state is
    // already there, so nothing new is posted.
    let syncs = |m: &Metrics| m.sum("relbot_syncs_total", &[("application", APP)]);
    let synced_before = syncs(&server.metrics().await);
    let again = push_body(&head, &head, &[&format!("apps/{APP}/settings.yaml")]);
    assert_eq!(
        server
            .post_github("push", "statuses-0", &again, &sign(&again))
            .await,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while syncs(&server.metrics().await) <= synced_before {
        assert!(
            Instant::now() < deadline,
            "no second look; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses_of(&head).len(),
        first.len(),
        "{:?}",
        statuses_of(&head)
    );

    // GitHub refuses the next statuses: the sync still applies the change.
    gh.inject(
        Some(axum::http::Method::POST),
        Some("/statuses/"),
        2,
        github_double::FaultAnswer::Status(422, "Validation Failed"),
    );
    let before = world.work.head();
    let after = world.change(APP, "v2");
    let body = push_body(&before, &after, &[&format!("apps/{APP}/settings.yaml")]);
    assert_eq!(
        server
            .post_github("push", "statuses-1", &body, &sign(&body))
            .await,
        202
    );
    world
        .wait_value(&server, APP, "v2", Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = server.metrics().await;
        if metrics.sum("relbot_commit_statuses_total", &[("result", "failed")]) >= 2.0 {
            assert!(metrics.sum("relbot_commit_statuses_total", &[("result", "posted")]) >= 2.0);
            assert_eq!(
                metrics.sum(
                    "relbot_syncs_total",
                    &[("application", APP), ("result", "failed")]
                ),
                0.0,
                "a refused status fails no sync"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused statuses were not counted: {:?}; statuses {:?}\nlog:\n{}",
            metrics
                .samples
                .iter()
                .filter(|(k, _)| k.contains("commit_statuses"))
                .collect::<Vec<_>>(),
            gh.commit_statuses(REPO),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(statuses_of(&after).is_empty());
    world.tc.cleanup().await;
}

/// A local receiver for webhook notifications: records each POSTed JSON
/// body and answers with the status set in `answer`.
struct Receiver {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    answer: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl Receiver {
    async fn start() -> Receiver {
        use std::sync::atomic::Ordering;
        let bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
        let answer = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let (kept, status) = (bodies.clone(), answer.clone());
        let app = axum::Router::new().route(
            "/hooks/T000/s3cr3t-path",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let (kept, status) = (kept.clone(), status.clone());
                async move {
                    kept.lock().unwrap().push(body);
                    axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hooks/T000/s3cr3t-path"),
            bodies,
            answer,
        }
    }

    fn events(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn wait_for(&self, count: usize, server: &Server) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let bodies = self.bodies.lock().unwrap().clone();
            if bodies.len() >= count {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "{count} notifications expected, got {bodies:?}\nlog:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The Events (events.k8s.io/v1) in the test's namespace, oldest first.
async fn sync_events(world: &World) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(world.tc.client(), world.tc.namespace());
    let mut events = api.list(&Default::default()).await.unwrap().items;
    events.retain(|e| e.reporting_controller.as_deref() == Some("relbot.dev/relbot"));
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
}

async fn wait_event(
    world: &World,
    server: &Server,
    reason: &str,
    note_has: &str,
) -> k8s_openapi::api::events::v1::Event {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let events = sync_events(world).await;
        if let Some(e) = events.iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.note.as_deref().unwrap_or_default().contains(note_has)
        }) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event naming {note_has:?}; events: {:?}\nlog:\n{}",
            events
                .iter()
                .map(|e| format!("{:?}: {:?}", e.reason, e.note))
                .collect::<Vec<_>>(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Events tell the story of the syncs on the status ConfigMap, and the
/// webhook hears each change of standing exactly once: failed, recovered,
/// Degraded, recovered — not a repeated failure, not again after a restart.
/// A receiver that refuses is counted and fails no sync; the URL (a secret)
/// is never logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_events_and_notifications_tell_each_change_once() {
    const APP: &str = "web";
    let receiver = Receiver::start().await;
    let image = format!("docker.io/acme/notify-web-{}", free_port());
    let mut world = World::with(
        "serve-notify",
        &[APP],
        "notifications:\n  webhook: true\n",
        &[],
    )
    .await;
    world.env = vec![("RELBOT_NOTIFY_WEBHOOK_URL".into(), receiver.url.clone())];
    let head = world.work.head();
    let mut server = world.start();
    server.wait_ready().await;
    let regarding = format!("relbot-status-{APP}");
    let started = wait_event(&world, &server, "SyncStarted", &head[..12]).await;
    assert_eq!(
        started.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some(regarding.as_str())
    );
    let synced = wait_event(&world, &server, "Synced", &head[..12]).await;
    assert_eq!(synced.type_.as_deref(), Some("Normal"));
    assert!(
        receiver.events().is_empty(),
        "a healthy first sync is no news"
    );

    // An unknown kind: the run fails.
    let push = |before: &str, after: &str| push_body(before, after, &["apps/web/extra.yaml"]);
    let broken = world.work.commit_file(
        "apps/web/extra.yaml",
        "apiVersion: nowhere.example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n",
        "web: a kind the cluster does not serve",
    );
    world.work.git(&["push", "-q", "origin", "main"]);
    let body = push(&head, &broken);
    assert_eq!(
        server.post_github("push", "n-1", &body, &sign(&body)).await,
        202
    );
    let first = receiver.wait_for(1, &server).await;
    assert_eq!(first[0]["event"], "failed");
    assert_eq!(first[0]["application"], APP);
    let text = first[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "relbot: web failed to sync revision {}",
            &broken[..12]
        )) && text.contains("Gadget"),
        "{text}"
    );
    let failed = wait_event(&world, &server, "SyncFailed", &broken[..12]).await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));

    // The same failure again: counted on the same event, no second message.
    assert_eq!(
        server.post_github("push", "n-2", &body, &sign(&body)).await,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let again = wait_event(&world, &server, "SyncFailed", &broken[..12]).await;
        if again.series.as_ref().map(|s| s.count) == Some(2) {
            assert_eq!(again.metadata.name, failed.metadata.name);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the repeated failure was not counted: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(receiver.events(), ["failed"]);

    // Fixed: one recovery.
    let fixed = world.work.commit_file(
        "apps/web/extra.yaml",
        &config_map_yaml("web-extra", "x"),
        "web: back to a ConfigMap",
    );
    world.work.git(&["push", "-q", "origin", "main"]);
    let body = push(&broken, &fixed);
    assert_eq!(
        server.post_github("push", "n-3", &body, &sign(&body)).await,
        202
    );
    let second = receiver.wait_for(2, &server).await;
    assert_eq!(second[1]["event"], "recovered");
    wait_event(&world, &server, "Recovered", &fixed[..12]).await;

    // A restart remembers what was told (the annotation on the record).
    assert!(
        !server.log().contains("s3cr3t"),
        "the webhook URL is a secret"
    );
    server.terminate();
    let server = world.start();
    server.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server
        .metrics()
        .await
        .sum("relbot_syncs_total", &[("application", APP)])
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "no sync after the restart; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The message, if any, follows the count within moments.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.events(), ["failed", "recovered"]);

    // A rollout that never becomes ready: Degraded, once.
    set_image_failing(world.tc.client(), &format!("{image}:2"), true).await;
    let deployment = |tag: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {{ app: web }}\n  template:\n    metadata:\n      labels: {{ app: web }}\n    spec:\n      containers:\n        - name: web\n          image: {image}:{tag}\n"
        )
    };
    let degraded = world
        .work
        .commit_file("apps/web/extra.yaml", &deployment("2"), "web: image 2");
    world.work.git(&["push", "-q", "origin", "main"]);
    let body = push(&fixed, &degraded);
    assert_eq!(
        server.post_github("push", "n-5", &body, &sign(&body)).await,
        202
    );
    let third = receiver.wait_for(3, &server).await;
    assert_eq!(
        third[2]["event"],
        "degraded",
        "{third:?}\nlog:\n{}\napp: {:?}",
        server.log(),
        server.get("/api/v1/applications/web").await
    );
    assert_eq!(third[2]["health"], "Degraded");
    wait_event(&world, &server, "Degraded", &degraded[..12]).await;

    // The receiver refuses the recovery: counted, the sync still succeeds,
    // and not sent again.
    receiver
        .answer
        .store(500, std::sync::atomic::Ordering::SeqCst);
    let healed = world
        .work
        .commit_file("apps/web/extra.yaml", &deployment("1"), "web: image 1");
    world.work.git(&["push", "-q", "origin", "main"]);
    let body = push(&degraded, &healed);
    assert_eq!(
        server.post_github("push", "n-6", &body, &sign(&body)).await,
        202
    );
    let fourth = receiver.wait_for(4, &server).await;
    assert_eq!(fourth[3]["event"], "recovered");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = server.metrics().await;
        if metrics.sum("relbot_notifications_total", &[("result", "failed")]) == 1.0 {
            assert_eq!(
                metrics.sum("relbot_notifications_total", &[("result", "sent")]),
                1.0,
                "this process sent the Degraded message"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused notification was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_event(&world, &server, "Recovered", &healed[..12]).await;
    set_image_failing(world.tc.client(), &format!("{image}:2"), false).await;
    let log = server.log();
    assert!(
        !log.contains("s3cr3t"),
        "the webhook URL is a secret:\n{log}"
    );
    assert_eq!(
        receiver.events(),
        ["failed", "recovered", "degraded", "recovered"]
    );
    world.tc.cleanup().await;
}
