//! `relbot serve --shards` with three replicas (the real binary) against one
//! git repository and one cluster (the emulator, or the real API server named
//! by RELBOT_TEST_KUBECONFIG): applications are split by the shard Leases,
//! each synced by exactly one replica; a killed replica's shards are taken
//! over; webhooks reach any replica and still give one bump PR.

#[path = "support/git.rs"]
mod git_support;
#[path = "support/github_double.rs"]
mod github_double;
#[path = "support/registry.rs"]
mod registry_support;
#[path = "support/serve.rs"]
mod serve_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use git_support::free_port;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use relbot::server::shard::{shard_lease_name, shard_of};
use serve_support::{
    REGISTRY_TOKEN, Server, WEB_DEPLOYMENT, WEB_POLICY, World, bump_peers, config_map_yaml,
    push_body, sign,
};

const SHARDS: u32 = 6;
/// A dead replica's shards are synced elsewhere within one Lease duration
/// (15 s) of the kill plus a little slack.
const TAKEOVER_BOUND: Duration = Duration::from_secs(20);

impl World {
    /// A world whose servers run `--shards` (SHARDS).
    async fn new(test: &str, apps: &[String], extra: &str, files: &[(&str, &str)]) -> World {
        let mut world = World::with(test, apps, extra, files).await;
        world.serve_args = vec!["--shards".to_string(), SHARDS.to_string()];
        world
    }

    /// One commit setting every application's value; returns the commit.
    fn change_all(&self, value: &str) -> String {
        for app in &self.apps {
            self.work.write(
                &format!("apps/{app}/settings.yaml"),
                &config_map_yaml(&format!("{app}-settings"), value),
            );
        }
        let sha = self.work.commit(&format!("all: {value}"));
        self.work.git(&["push", "-q", "origin", "main"]);
        sha
    }

    /// Replica `name`, a pod of its own with its own cache.
    fn start(&self, name: &str) -> Server {
        let cache = self.dir.path().join(format!("cache-{name}"));
        Server::start(self, free_port(), name, &cache)
    }

    async fn values(&self) -> BTreeMap<String, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.tc.client(), self.tc.namespace());
        let mut values = BTreeMap::new();
        for cm in api.list(&Default::default()).await.unwrap().items {
            let name = cm.metadata.name.clone().unwrap_or_default();
            if let Some(app) = name.strip_suffix("-settings")
                && let Some(value) = cm.data.as_ref().and_then(|d| d.get("value"))
            {
                values.insert(app.to_string(), value.clone());
            }
        }
        values
    }

    /// Waits until every application in `apps` has `value`; returns when.
    async fn wait_values(
        &self,
        apps: &[String],
        value: &str,
        timeout: Duration,
        servers: &[&Server],
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let values = self.values().await;
            let behind: Vec<&String> = apps
                .iter()
                .filter(|a| values.get(*a).map(String::as_str) != Some(value))
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} applications not at {value} within {timeout:?}: {behind:?}; logs:\n{}",
                behind.len(),
                servers
                    .iter()
                    .map(|s| s.named_log())
                    .collect::<Vec<_>>()
                    .join("\n-----\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Holder of each shard Lease (None: free).
    async fn holders(&self) -> BTreeMap<u32, Option<String>> {
        let api: Api<Lease> = Api::namespaced(self.tc.client(), self.tc.namespace());
        let mut holders = BTreeMap::new();
        for shard in 0..SHARDS {
            let holder = api
                .get_opt(&shard_lease_name(shard))
                .await
                .unwrap()
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty());
            holders.insert(shard, holder);
        }
        holders
    }

    /// Waits until every shard is held and each of `replicas` holds
    /// `SHARDS / replicas.len()` of them.
    async fn wait_balanced(
        &self,
        replicas: &[&str],
        timeout: Duration,
        servers: &[&Server],
    ) -> BTreeMap<u32, String> {
        let deadline = Instant::now() + timeout;
        let share = SHARDS as usize / replicas.len();
        loop {
            let holders = self.holders().await;
            let held: BTreeMap<u32, String> = holders
                .iter()
                .filter_map(|(s, h)| h.clone().map(|h| (*s, h)))
                .collect();
            let balanced = held.len() == SHARDS as usize
                && replicas
                    .iter()
                    .all(|r| held.values().filter(|h| h == r).count() == share);
            if balanced {
                return held;
            }
            assert!(
                Instant::now() < deadline,
                "shards not balanced over {replicas:?} within {timeout:?}: {holders:?}; logs:\n{}",
                servers
                    .iter()
                    .map(|s| s.named_log())
                    .collect::<Vec<_>>()
                    .join("\n-----\n")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The status record's run history of `app`.
    async fn runs(&self, app: &str) -> Vec<Run> {
        let api: Api<ConfigMap> = Api::namespaced(self.tc.client(), self.tc.namespace());
        let cm = api
            .get(&relbot::sync::status::config_map_name(app))
            .await
            .unwrap();
        let text = cm
            .data
            .and_then(|d| d.get("runs.json").cloned())
            .unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Who owns `<app>-settings`' data (managedFields): the managers and,
    /// for relbot's apply, when its field set last changed (seconds).
    async fn data_owners(&self, app: &str) -> (Vec<String>, DateTime<Utc>) {
        let api: Api<ConfigMap> = Api::namespaced(self.tc.client(), self.tc.namespace());
        let cm = api.get(&format!("{app}-settings")).await.unwrap();
        let entries = cm.metadata.managed_fields.unwrap_or_default();
        let owners = entries
            .iter()
            .filter(|f| {
                f.fields_v1
                    .as_ref()
                    .is_some_and(|v| v.0.get("f:data").is_some())
            })
            .map(|f| {
                format!(
                    "{}/{}",
                    f.manager.as_deref().unwrap_or("?"),
                    f.operation.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let time = entries
            .iter()
            .find(|f| f.manager.as_deref() == Some("relbot"))
            .and_then(|f| f.time.clone())
            .expect("relbot's entry in managedFields")
            .0;
        (
            owners,
            DateTime::from_timestamp(time.as_second(), 0).unwrap(),
        )
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    started_at: DateTime<Utc>,
    trigger: String,
    revision: Option<String>,
    duration_ms: u64,
}

impl Run {
    /// `<replica> shard <n>: <reasons>` as written by a sharded replica.
    fn replica(&self) -> Option<&str> {
        let (who, _) = self.trigger.split_once(" shard ")?;
        Some(who)
    }

    fn finished_at(&self) -> DateTime<Utc> {
        self.started_at + chrono::Duration::milliseconds(self.duration_ms as i64)
    }
}

impl Server {
    async fn push(&self, before: &str, after: &str, paths: &[String]) -> u16 {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let body = push_body(before, after, &paths);
        self.http
            .post(self.url("/webhooks/github"))
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("push-{after}-{}", self.port))
            .header("x-hub-signature-256", sign(&body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook delivered")
            .status()
            .as_u16()
    }

    /// Sum of a counter's samples whose labels include `labels`.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            // An empty sum is -0.0; none is 0.
            .fold(0.0, |sum, v| sum + v)
    }
}

fn app_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("app-{i:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sync_each_application_once_and_take_over_a_killed_ones_shards() {
    let apps = app_names(30);
    let world = World::new("serve-shard", &apps, "", &[]).await;
    let names = ["replica-a", "replica-b", "replica-c"];
    let mut servers: Vec<Server> = names.iter().map(|n| world.start(n)).collect();
    for server in &servers {
        server.wait_ready().await;
    }
    let refs: Vec<&Server> = servers.iter().collect();
    world
        .wait_values(&apps, "v1", Duration::from_secs(90), &refs)
        .await;
    let holders = world
        .wait_balanced(&names, Duration::from_secs(60), &refs)
        .await;

    // A push naming all 30 applications, to one replica: it syncs what its
    // shards hold and forwards the rest to the holders.
    let before = world.work.head();
    let v2 = world.change_all("v2");
    let paths: Vec<String> = apps
        .iter()
        .map(|a| format!("apps/{a}/settings.yaml"))
        .collect();
    assert_eq!(servers[0].push(&before, &v2, &paths).await, 202);
    world
        .wait_values(&apps, "v2", Duration::from_secs(60), &refs)
        .await;

    // Each application's v2 run was made by exactly one replica: the holder
    // of its shard; relbot's write (managedFields) falls inside that run.
    let mut by_replica: BTreeMap<String, usize> = BTreeMap::new();
    for app in &apps {
        let runs = world.runs(app).await;
        let v2_runs: Vec<&Run> = runs
            .iter()
            .filter(|r| r.revision.as_deref() == Some(v2.as_str()))
            .collect();
        assert_eq!(v2_runs.len(), 1, "{app}: one run applied v2: {runs:?}");
        let run = v2_runs[0];
        let holder = &holders[&shard_of(app, SHARDS)];
        assert_eq!(run.replica(), Some(holder.as_str()), "{app}: {run:?}");
        // One field manager for every replica, so a shard that moves never
        // leaves two owners of a field; its entry was last written no later
        // than this run (the API server moves the time only when the field
        // set changes, so the run history above is what names the replica).
        let (owners, written) = world.data_owners(app).await;
        assert_eq!(owners, vec!["relbot/Apply".to_string()], "{app}");
        assert!(
            written <= run.finished_at() + chrono::Duration::seconds(1),
            "{app}: managedFields written at {written}, after {run:?}"
        );
        *by_replica.entry(holder.clone()).or_default() += 1;
        // Never two replicas at once: runs by different replicas never overlap.
        for (i, a) in runs.iter().enumerate() {
            for b in &runs[i + 1..] {
                if a.replica() != b.replica() {
                    assert!(
                        a.finished_at() <= b.started_at || b.finished_at() <= a.started_at,
                        "{app}: overlapping runs {a:?} and {b:?}"
                    );
                }
            }
        }
    }
    assert_eq!(
        by_replica
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        names.into_iter().collect::<BTreeSet<_>>(),
        "every replica syncs a share: {by_replica:?}"
    );
    eprintln!("applications per replica: {by_replica:?}");

    // Kill replica-b (no SIGTERM): its shards expire and the others take
    // them over one Lease period (15 s) after its last renewal, which was
    // at most one retry period (2 s) before the kill; its applications
    // sync again at once. 20 s from the kill leaves 3 s for the pass that
    // notices, the sync and the emulator or API server.
    let dead = "replica-b";
    let orphans: Vec<String> = apps
        .iter()
        .filter(|a| holders[&shard_of(a, SHARDS)] == dead)
        .cloned()
        .collect();
    assert!(!orphans.is_empty());
    servers[1].kill();
    let killed = Instant::now();
    let killed_at = Utc::now();
    let before = world.work.head();
    let v3 = world.change_all("v3");
    assert_eq!(servers[2].push(&before, &v3, &paths).await, 202);
    let survivors: Vec<&Server> = vec![&servers[0], &servers[2]];
    let others: Vec<String> = apps
        .iter()
        .filter(|a| !orphans.contains(a))
        .cloned()
        .collect();
    world
        .wait_values(&others, "v3", Duration::from_secs(20), &survivors)
        .await;
    world
        .wait_values(&orphans, "v3", TAKEOVER_BOUND, &survivors)
        .await;
    let takeover = killed.elapsed();
    eprintln!(
        "{} applications of the killed replica synced again {:.1} s after the kill",
        orphans.len(),
        takeover.as_secs_f64()
    );
    let after = world
        .wait_balanced(
            &["replica-a", "replica-c"],
            Duration::from_secs(30),
            &survivors,
        )
        .await;
    assert!(!after.values().any(|h| h == dead), "{after:?}");
    for app in &orphans {
        let runs = world.runs(app).await;
        let v3_run = runs
            .iter()
            .find(|r| r.revision.as_deref() == Some(v3.as_str()))
            .unwrap_or_else(|| panic!("{app}: no v3 run: {runs:?}"));
        assert_ne!(v3_run.replica(), Some(dead), "{app}: {v3_run:?}");
        // The status record proves it: the run that applied v3 finished
        // within the bound after the kill (on the test's clock; same host).
        let after_kill = (v3_run.finished_at() - killed_at)
            .to_std()
            .unwrap_or_default();
        assert!(
            after_kill <= TAKEOVER_BOUND,
            "{app}: synced {after_kill:?} after the kill: {v3_run:?}"
        );
        // relbot's write of v3 is no later than that run's end.
        let (_, written) = world.data_owners(app).await;
        assert!(
            written <= v3_run.finished_at() + chrono::Duration::seconds(1),
            "{app}: managedFields written at {written}, after {v3_run:?}"
        );
    }
    let takeovers: f64 = futures::future::join_all(
        survivors
            .iter()
            .map(|s| s.metric("relbot_shard_takeovers_total", &[])),
    )
    .await
    .into_iter()
    .sum();
    let dead_shards = holders.values().filter(|h| *h == dead).count() as f64;
    assert_eq!(
        takeovers, dead_shards,
        "each of the dead replica's shards taken over once"
    );
    // The gauge is set at the end of each pass, just after the renewals.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held: f64 = futures::future::join_all(
            survivors
                .iter()
                .map(|s| s.metric("relbot_shards_held", &[])),
        )
        .await
        .into_iter()
        .sum();
        if held == f64::from(SHARDS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relbot_shards_held sums to {held} over the survivors, not {SHARDS}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for server in &mut servers {
        server.kill();
    }
    world.tc.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_webhooks_to_random_replicas_give_one_bump_pr_from_the_leader() {
    const REPO: &str = "acme/cluster-config";
    // CI must pass first: auto-merge waits, so the PR stays pending.
    let (registry, gh) = bump_peers(REPO).await;
    let (deployment, policy) = (WEB_DEPLOYMENT, WEB_POLICY);
    // The shard count from relbot.yaml this time, not from --shards.
    let extra = format!(
        "policies: policies\nregistries:\n  - host: docker.io\n    mirror: {}\nserve:\n  shards: {SHARDS}\n",
        registry.host
    );
    let mut apps = app_names(5);
    apps.push("web".into());
    let mut world = World::new(
        "serve-shard-bump",
        &apps,
        &extra,
        &[
            ("apps/web/deploy.yaml", deployment),
            ("policies/web.yaml", policy),
        ],
    )
    .await;
    gh.attach_git(REPO, world.bare.path());
    world.serve_args.clear();
    world.env = vec![
        ("RELBOT_GITHUB_API_URL".into(), gh.url()),
        (
            "RELBOT_GITHUB_TOKEN".into(),
            github_double::GitHubDouble::TOKEN.into(),
        ),
    ];
    let names = ["replica-a", "replica-b", "replica-c"];
    let servers: Vec<Server> = names.iter().map(|n| world.start(n)).collect();
    for server in &servers {
        server.wait_ready().await;
    }
    let refs: Vec<&Server> = servers.iter().collect();
    world
        .wait_values(&app_names(5), "v1", Duration::from_secs(60), &refs)
        .await;
    world
        .wait_balanced(&names, Duration::from_secs(60), &refs)
        .await;
    assert!(gh.pulls(REPO).is_empty(), "no bump before the webhooks");

    let notification = serde_json::json!({"events": [{
        "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "repository": "acme/web", "tag": "1.1.0"},
        "request": {"host": "docker.io"}
    }]});
    let sends = (0..50).map(|_| {
        let server = &servers[rand::random_range(0..servers.len())];
        let request = server
            .http
            .post(server.url(&format!("/webhooks/registry/{REGISTRY_TOKEN}")))
            .json(&notification)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while gh.pulls(REPO).is_empty() {
        let logs: Vec<String> = servers.iter().map(|s| s.named_log()).collect();
        assert!(
            Instant::now() < deadline,
            "no PR; logs:\n{}",
            logs.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every trigger reaches the leader (directly, or as a letter through
    // the ConfigMap, read every 2 s): wait until all 50 arrived there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let mut arrived = BTreeMap::new();
        for server in &servers {
            let triggers = server
                .metric("relbot_triggers_total", &[("kind", "bump")])
                .await;
            arrived.insert(server.name.clone(), triggers);
        }
        if let Some((name, _)) = arrived.iter().find(|(_, n)| **n >= 50.0) {
            break name.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the 50 bump triggers never all reached one replica: {arrived:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let leader = servers.iter().find(|s| s.name == leader).unwrap();
    // The last ones are queued a moment before the worker looks at them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The queue settles: no run is pending or running on the leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader.metric("relbot_update_running", &[]).await > 0.0 {
        assert!(Instant::now() < deadline, "the leader never went idle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pulls = gh.pulls(REPO);
    assert_eq!(pulls.len(), 1, "exactly one bump PR: {pulls:?}");
    let mut opened = 0.0;
    let mut bump_runs = BTreeMap::new();
    for server in &servers {
        opened += server
            .metric("relbot_pull_requests_total", &[("action", "opened")])
            .await;
        let runs = server
            .metric("relbot_updates_total", &[("part", "bump")])
            .await;
        bump_runs.insert(server.name.clone(), runs);
    }
    assert_eq!(opened, 1.0, "one PR opened across the replicas");
    let coalesced = leader
        .metric("relbot_triggers_coalesced_total", &[("kind", "bump")])
        .await;
    let without_news = leader
        .metric("relbot_triggers_without_news_total", &[("kind", "bump")])
        .await;
    eprintln!(
        "50 webhooks gave {bump_runs:?} bump runs on {}: {coalesced} merged into a pending run, {without_news} dropped as already seen",
        leader.name
    );
    assert_eq!(
        bump_runs.values().sum::<f64>(),
        1.0,
        "50 triggers for one pushed tag give exactly one bump run: {bump_runs:?}"
    );
    assert_eq!(bump_runs[&leader.name], 1.0, "the run is the leader's");
    // The PR's branch got one push: no run after the first touched it.
    let pushes = leader
        .metric("relbot_pull_requests_total", &[("action", "updated")])
        .await;
    assert_eq!(pushes, 0.0, "no run updated the PR afterwards");
    world.tc.cleanup().await;
}
