//! `relbot serve` with many applications: 1,000 applications of 4 objects
//! each (a ConfigMap, a Service, a Deployment and a ServiceAccount), each in
//! its own folder of one git repository. Printed, never asserted:
//!
//! - the first full sync of all (process start to every application Synced
//!   at the head revision), and when all are Healthy with nothing running;
//! - a no-op pass of all (a forced push: every application re-checked,
//!   nothing changed), its wall time and the writes it made, counted as
//!   objects whose resourceVersion moved plus Events created (must be 0);
//! - the serve process's peak RSS (VmHWM).
//!
//! Targets (issue 17): first full sync < 20 s, no-op pass < 5 s with 0
//! writes, RSS < 64 MiB.
//!
//! Against the in-process emulator by default; with `RELBOT_BENCH_REAL=1`
//! against the cluster of `RELBOT_TEST_KUBECONFIG`, else a control plane
//! started from the newest folder of `/usr/local/kubebuilder` (with its
//! kubelet stand-in, so Deployments roll out as on a real cluster).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service, ServiceAccount};
use kube::Api;
use kube::api::ListParams;
use kubesim::testing::TestCluster;

use super::git_support::{BareRepo, TestRepo};
use super::{Serve, http_client, mib, proc_status_kib, publish_config, send_push};

/// How many applications: 1,000, or `RELBOT_BENCH_APPS` (a smaller run
/// to look at one application's cost).
fn apps() -> usize {
    std::env::var("RELBOT_BENCH_APPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

fn app_files(app: &str, ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\n  namespace: {ns}\ndata:\n  value: \"v1\"\n\
---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n  namespace: {ns}\n\
---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\n  namespace: {ns}\nspec:\n  selector: {{ app: {app} }}\n  ports:\n    - port: 80\n      targetPort: 8080\n\
---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{ app: {app} }}\n  template:\n    metadata:\n      labels: {{ app: {app} }}\n    spec:\n      serviceAccountName: {app}\n      containers:\n        - name: app\n          image: registry.k8s.io/pause:3.9\n"
    )
}

/// resourceVersion of every object of the four kinds (and the status
/// records, which are ConfigMaps too) in `ns`.
async fn versions(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let params = ListParams::default();
    macro_rules! collect {
        ($kind:ty, $label:expr) => {
            let api: Api<$kind> = Api::namespaced(client.clone(), ns);
            for item in api.list(&params).await.expect("list").items {
                out.insert(
                    format!("{}/{}", $label, item.metadata.name.unwrap_or_default()),
                    item.metadata.resource_version.unwrap_or_default(),
                );
            }
        };
    }
    collect!(ConfigMap, "configmap");
    collect!(ServiceAccount, "serviceaccount");
    collect!(Service, "service");
    collect!(Deployment, "deployment");
    // relbot's own Events only: the controllers' (ScalingReplicaSet and
    // the like) go on arriving while rollouts finish.
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for item in events.list(&params).await.expect("list").items {
        let name = item.metadata.name.unwrap_or_default();
        if name.starts_with("relbot-status-") {
            out.insert(
                format!("event/{name}"),
                item.metadata.resource_version.unwrap_or_default(),
            );
        }
    }
    out
}

/// Objects that changed or appeared between two listings.
fn writes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after
        .iter()
        .filter(|(name, version)| before.get(*name) != Some(*version))
        .map(|(name, _)| name.clone())
        .collect()
}

async fn metric(http: &reqwest::Client, base: &str, name: &str, labels: &str) -> f64 {
    let Ok(response) = http.get(format!("{base}/metrics")).send().await else {
        return -1.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// How far serve has come: every application Synced (applied at the head
/// revision), and every one Healthy with no run going or waiting (its
/// rollouts seen through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Starting,
    Applied,
    Settled,
}

async fn reached(http: &reqwest::Client, base: &str) -> Reached {
    let Ok(response) = http.get(format!("{base}/api/status")).send().await else {
        return Reached::Starting;
    };
    let Ok(status) = response.json::<serde_json::Value>().await else {
        return Reached::Starting;
    };
    let listed = status["apps"].as_array().cloned().unwrap_or_default();
    let head = status["revision"].as_str();
    let applied = status["ready"] == true
        && listed.len() == apps()
        && listed
            .iter()
            .all(|a| a["sync"] == "Synced" && a["revision"].as_str() == head);
    let idle = status["running"] == false && status["pending"] == false;
    match (
        applied,
        idle && listed.iter().all(|a| a["health"] == "Healthy"),
    ) {
        (true, true) => Reached::Settled,
        (true, false) => Reached::Applied,
        _ => Reached::Starting,
    }
}

/// `kubeconfig`: a real API server; None: the emulator.
pub async fn run(kubeconfig: Option<std::path::PathBuf>) {
    let real = kubeconfig.is_some();
    let tc = match &kubeconfig {
        Some(path) => TestCluster::external(path, "serve-many").await,
        // Controllers mode: Deployments roll out, as on a real cluster.
        None => {
            let opts = kubesim::SimOptions {
                controllers: Some(Default::default()),
                ..Default::default()
            };
            TestCluster::emulator("serve-many", opts).await
        }
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let ns = tc.namespace().to_string();
    let client = tc.client();
    let version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_default();
    let bare = BareRepo::new("cluster-config");
    let work = TestRepo::clone_from(&bare.url());
    let names: Vec<String> = (0..apps()).map(|i| format!("app-{i:04}")).collect();
    for app in &names {
        work.write(&format!("apps/{app}/objects.yaml"), &app_files(app, &ns));
    }
    let dir = publish_config(&bare, &work, &ns, &names);

    let started = Instant::now();
    let (serve, base) = Serve::start(&tc, dir.path());
    let pid = serve.pid();
    let http = http_client();
    let mut first_sync = None;
    loop {
        let now = reached(&http, &base).await;
        if now != Reached::Starting && first_sync.is_none() {
            first_sync = Some(started.elapsed());
        }
        if now == Reached::Settled {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{} applications were not synced and healthy within 600 s",
            apps()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (first_sync, settled) = (first_sync.unwrap_or_default(), started.elapsed());
    let peak_first = proc_status_kib(pid, "VmHWM:");

    // A no-op pass of all: a forced push of the same head re-checks every
    // application.
    let before = versions(&client, &ns).await;
    let runs_before = metric(&http, &base, "relbot_updates_total", "part=\"sync\"").await;
    let head = work.head();
    let event = serde_json::json!({
        "ref": "refs/heads/main", "before": head, "after": head, "forced": true,
        "repository": {"full_name": "acme/cluster-config"},
        "commits": [],
    });
    let sent = Instant::now();
    let status = send_push(&http, &base, "bench-noop", event).await;
    assert_eq!(status, 202, "the forced push was not accepted");
    loop {
        let runs = metric(&http, &base, "relbot_updates_total", "part=\"sync\"").await;
        if runs > runs_before && reached(&http, &base).await == Reached::Settled {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(300),
            "the no-op pass did not finish within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noop = sent.elapsed();
    let after = versions(&client, &ns).await;
    let written = writes(&before, &after);
    let peak = proc_status_kib(pid, "VmHWM:");
    let idle = proc_status_kib(pid, "VmRSS:");

    println!(
        "relbot serve: {} applications × 4 objects (ConfigMap, ServiceAccount, Service, Deployment), {}",
        apps(),
        if real {
            format!("real API server {version}")
        } else {
            "API-server emulator".to_string()
        }
    );
    println!(
        "  first full sync of all: {:.2} s (target < 20 s); all Healthy, nothing running: {:.2} s",
        first_sync.as_secs_f64(),
        settled.as_secs_f64()
    );
    println!(
        "  no-op pass of all: {:.2} s, {} writes (target < 5 s, 0 writes){}",
        noop.as_secs_f64(),
        written.len(),
        if written.is_empty() {
            String::new()
        } else {
            format!("; first: {:?}", written.iter().take(5).collect::<Vec<_>>())
        }
    );
    println!(
        "  memory: peak RSS after the first sync {:.1} MiB, peak overall {:.1} MiB, RSS now {:.1} MiB (target < 64 MiB)",
        mib(peak_first),
        mib(peak),
        mib(idle)
    );
    drop(serve);
    tc.cleanup().await;
}
