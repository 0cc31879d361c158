//! The update queue under load: triggers fired at once through the
//! real HTTP endpoints (GitHub pushes and registry webhooks mixed) produce
//! one update at a time and one PR per policy. Assertions are on the
//! recorded request log, not on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relbot::release::registry::ImageRef;
use relbot::server::http::{AppState, HttpSettings, Readiness, router};
use relbot::server::webhook::{Routes, Secret, github_signature};
use relbot::server::{
    Executor, LeaderState, Metrics, PolicySelector, PrSelector, RunContext, RunError, Selector,
    SyncRequest, Trigger, UpdateQueue,
};
use serde_json::json;

const SECRET: &str = "s";
const TOKEN: &str = "t";
const APPS: usize = 10;
const POLICIES: usize = 10;

/// One line of the request log a real GitHub/cluster double would see.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Start {
        run: u64,
        first_ticket: u64,
        last_ticket: u64,
    },
    Sync {
        app: String,
    },
    OpenPr {
        policy: String,
    },
    UpdatePr {
        policy: String,
    },
    End {
        run: u64,
    },
}

/// A fake that behaves like a careless bump engine: it looks for an open PR,
/// waits (a network round trip), then opens one if it found none. Two runs
/// in parallel would both open a PR; only the guard prevents it.
#[derive(Clone, Default)]
struct FakeWorld {
    log: Arc<Mutex<Vec<Entry>>>,
    open_prs: Arc<Mutex<BTreeSet<String>>>,
    runs: Arc<Mutex<u64>>,
}

impl FakeWorld {
    fn log(&self) -> Vec<Entry> {
        self.log.lock().unwrap().clone()
    }

    fn push(&self, entry: Entry) {
        self.log.lock().unwrap().push(entry);
    }

    async fn bracket<F: std::future::Future<Output = ()>>(&self, run: &RunContext, body: F) {
        let id = {
            let mut runs = self.runs.lock().unwrap();
            *runs += 1;
            *runs
        };
        self.push(Entry::Start {
            run: id,
            first_ticket: run.first_ticket,
            last_ticket: run.last_ticket,
        });
        body.await;
        self.push(Entry::End { run: id });
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

impl Executor for FakeWorld {
    async fn sync(&self, request: &SyncRequest, run: &RunContext) -> Result<(), RunError> {
        self.bracket(run, async {
            for app in names("app", APPS) {
                if request.apps.contains(&app) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    self.push(Entry::Sync { app });
                }
            }
        })
        .await;
        Ok(())
    }

    async fn bump(&self, policies: &PolicySelector, run: &RunContext) -> Result<(), RunError> {
        self.bracket(run, async {
            for policy in names("policy", POLICIES) {
                if !policies.contains(&policy) {
                    continue;
                }
                let exists = self.open_prs.lock().unwrap().contains(&policy);
                tokio::time::sleep(Duration::from_millis(2)).await;
                if exists {
                    self.push(Entry::UpdatePr { policy });
                } else {
                    self.open_prs.lock().unwrap().insert(policy.clone());
                    self.push(Entry::OpenPr { policy });
                }
            }
        })
        .await;
        Ok(())
    }

    async fn continue_merge(&self, _: &PrSelector, run: &RunContext) -> Result<(), RunError> {
        self.bracket(run, async {}).await;
        Ok(())
    }
}

fn routes() -> Routes {
    Routes {
        repository: Some("acme/cluster-config".into()),
        branch: "main".into(),
        config_paths: vec!["relbot.yaml".into()],
        apps: names("app", APPS)
            .into_iter()
            .map(|a| (a.clone(), format!("manifests/{a}").into()))
            .collect(),
        policies: names("policy", POLICIES)
            .into_iter()
            .map(|p| {
                (
                    p.clone(),
                    ImageRef::parse(&format!("docker.io/acme/{p}")).unwrap(),
                )
            })
            .collect(),
    }
}

/// Asserts the log is a sequence of Start … End brackets that never nest or
/// interleave, and returns the entries of each run.
fn runs(log: &[Entry]) -> Vec<(u64, u64, Vec<Entry>)> {
    let mut runs = Vec::new();
    let mut current: Option<(u64, u64, u64, Vec<Entry>)> = None;
    for entry in log {
        match entry {
            Entry::Start {
                run,
                first_ticket,
                last_ticket,
            } => {
                assert!(
                    current.is_none(),
                    "run {run} started while another was running: {log:#?}"
                );
                current = Some((*run, *first_ticket, *last_ticket, Vec::new()));
            }
            Entry::End { run } => {
                let (id, first, last, entries) = current.take().expect("End without Start");
                assert_eq!(id, *run, "runs interleave");
                runs.push((first, last, entries));
            }
            other => current
                .as_mut()
                .expect("work outside a run")
                .3
                .push(other.clone()),
        }
    }
    assert!(current.is_none(), "a run never ended");
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_mixed_webhooks_at_once_run_one_at_a_time_with_one_pr_per_policy() {
    let world = FakeWorld::default();
    let metrics = Arc::new(Metrics::new());
    let queue = UpdateQueue::start(world.clone(), LeaderState::always(), metrics.clone());
    let settings = HttpSettings {
        github_secret: Some(Secret::new(SECRET)),
        registry_token: Some(Secret::new(TOKEN)),
        ..HttpSettings::default()
    };
    let state = AppState::new(
        queue.clone(),
        metrics.clone(),
        Arc::new(Readiness::new(Vec::<String>::new(), metrics.clone())),
        LeaderState::always(),
        routes(),
        settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    relbot::tls::init();
    let client = reqwest::Client::new();

    // 25 pushes (each touching one app) and 25 registry pushes (each naming
    // one policy), fired together.
    let mut requests = Vec::new();
    for i in 0..50usize {
        let client = client.clone();
        let base = base.clone();
        requests.push(tokio::spawn(async move {
            let response = if i % 2 == 0 {
                let body = json!({
                    "ref": "refs/heads/main", "before": "0".repeat(40), "after": format!("{i:040}"),
                    "repository": {"full_name": "acme/cluster-config"},
                    "commits": [{"added": [], "modified": [format!("manifests/app{}/x.yaml", (i / 2) % APPS)], "removed": []}]
                })
                .to_string();
                client
                    .post(format!("{base}/webhooks/github"))
                    .header("X-GitHub-Event", "push")
                    .header("X-GitHub-Delivery", format!("delivery-{i}"))
                    .header("X-Hub-Signature-256", github_signature(SECRET.as_bytes(), body.as_bytes()))
                    .body(body)
                    .send()
                    .await
            } else {
                let body = json!({"push_data": {"tag": format!("1.0.{i}")}, "repository": {"repo_name": format!("acme/policy{}", (i / 2) % POLICIES)}});
                client.post(format!("{base}/webhooks/registry/{TOKEN}")).body(body.to_string()).send().await
            };
            response.unwrap().status().as_u16()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 202);
    }
    queue.wait_idle().await;

    let log = world.log();
    let runs = runs(&log);
    // One PR per policy, however the triggers were grouped.
    let mut opened: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, entries) in &runs {
        for entry in entries {
            if let Entry::OpenPr { policy } = entry {
                *opened.entry(policy.clone()).or_default() += 1;
            }
        }
    }
    assert_eq!(opened.len(), POLICIES, "every policy got a PR: {opened:?}");
    assert!(
        opened.values().all(|n| *n == 1),
        "one PR per policy: {opened:?}"
    );
    // Every app named by a push was synced.
    let synced: BTreeSet<String> = log
        .iter()
        .filter_map(|e| match e {
            Entry::Sync { app } => Some(app.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(synced.len(), APPS);
    // Coalescing: far fewer runs than triggers.
    let stats = queue.stats();
    assert_eq!(stats.submitted, 50);
    assert_eq!(stats.submitted, stats.coalesced + stats.executed);
    assert!(stats.executed < 50, "{stats:?}");
    // Ticket ranges are disjoint, ordered and cover every submission.
    let mut ranges: Vec<(u64, u64)> = runs.iter().map(|(f, l, _)| (*f, *l)).collect();
    ranges.dedup(); // sync and bump parts of one run share a range
    let mut next = 1;
    for (first, last) in ranges {
        assert_eq!(first, next, "tickets skipped or repeated");
        next = last + 1;
    }
    assert_eq!(next, 51);
}

/// "Nothing lost": every app a trigger names is synced by a run that
/// started after the trigger was submitted (its ticket lies in the run's
/// range), even when the trigger arrives while that app is being synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_trigger_is_served_by_a_run_at_or_after_it() {
    let world = FakeWorld::default();
    let queue = UpdateQueue::start(
        world.clone(),
        LeaderState::always(),
        Arc::new(Metrics::new()),
    );
    let mut submitted: Vec<(u64, String)> = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            let app = format!("app{}", i % APPS);
            let ticket = queue
                .submit(Trigger::Sync {
                    apps: Selector::only([app.clone()]),
                    revision: None,
                    reason: "t".into(),
                })
                .unwrap();
            (ticket, app)
        }));
    }
    for task in tasks {
        submitted.push(task.await.unwrap());
    }
    queue.wait_idle().await;
    let log = world.log();
    let runs = runs(&log);
    for (ticket, app) in submitted {
        let served = runs.iter().any(|(first, last, entries)| {
            (*first..=*last).contains(&ticket)
                && entries.contains(&Entry::Sync { app: app.clone() })
        });
        assert!(
            served,
            "ticket {ticket} for {app} not served by a run covering it"
        );
    }
}
