//! Tests of the update queue.

use super::*;
use crate::server::trigger::Selector;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records every call; fails the run it overlaps with another.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
    overlaps: Arc<AtomicUsize>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// `policy:tag` pairs a bump run saw (filled by the test).
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn enter(&self, call: String) {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.calls.lock().unwrap().push(call);
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Executor for Recorder {
    async fn sync(&self, request: &SyncRequest, _run: &RunContext) -> Result<(), RunError> {
        self.enter(format!(
            "sync {} @{}",
            request.apps,
            request.revision.as_deref().unwrap_or("head")
        ))
        .await;
        Ok(())
    }
    async fn bump(&self, policies: &PolicySelector, _run: &RunContext) -> Result<(), RunError> {
        self.enter(format!("bump {policies}")).await;
        Ok(())
    }
    async fn continue_merge(&self, prs: &PrSelector, _run: &RunContext) -> Result<(), RunError> {
        self.enter(format!("merge {prs}")).await;
        Err(RunError::new("checks still pending"))
    }
    fn has_seen(&self, policy: &str, tag: &str) -> bool {
        self.seen
            .lock()
            .unwrap()
            .contains(&format!("{policy}:{tag}"))
    }
}

fn sync(app: &str, rev: &str) -> Trigger {
    Trigger::Sync {
        apps: Selector::only([app.to_string()]),
        revision: Some(rev.into()),
        reason: "push".into(),
    }
}

#[tokio::test]
async fn triggers_while_running_coalesce_into_one_next_run() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let rec = Recorder {
        gate: Some(gate.clone()),
        ..Default::default()
    };
    let queue = UpdateQueue::start(rec.clone(), LeaderState::always(), Arc::new(Metrics::new()));
    queue.submit(sync("a", "r1")).unwrap();
    // Wait until the first run is inside the executor.
    let mut rx = queue.inner.progress.subscribe();
    rx.wait_for(|p| p.running).await.unwrap();
    queue.submit(sync("b", "r2"));
    queue.submit(sync("c", "r3"));
    queue.submit(Trigger::bump(Selector::only(["p".to_string()]), "registry"));
    gate.add_permits(10);
    queue.wait_idle().await;
    assert_eq!(rec.calls(), vec!["sync a @r1", "sync b,c @r3", "bump p"]);
    let stats = queue.stats();
    assert_eq!(
        (stats.submitted, stats.coalesced, stats.executed),
        (4, 2, 2)
    );
    assert_eq!(queue.progress().done_through, 4);
    assert_eq!(rec.overlaps.load(Ordering::SeqCst), 0);
}

fn pushed(policy: &str, tag: &str) -> Trigger {
    Trigger::Bump {
        policies: Selector::only([policy.to_string()]),
        news: crate::server::trigger::News::tags([tag.to_string()]),
        reason: "registry notification".into(),
    }
}

#[tokio::test]
async fn the_same_pushed_tag_announced_during_a_run_runs_nothing_more() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let rec = Recorder {
        gate: Some(gate.clone()),
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::new());
    let queue = UpdateQueue::start(rec.clone(), LeaderState::always(), metrics.clone());
    queue.submit(pushed("web", "1.1.0")).unwrap();
    let mut rx = queue.inner.progress.subscribe();
    rx.wait_for(|p| p.running).await.unwrap();
    // 49 more deliveries of the same push while the run goes on; the run
    // finds the tag.
    for _ in 0..49 {
        queue.submit(pushed("web", "1.1.0"));
    }
    rec.seen.lock().unwrap().push("web:1.1.0".into());
    gate.add_permits(10);
    queue.wait_idle().await;
    assert_eq!(rec.calls(), vec!["bump web"]);
    assert_eq!(queue.stats().executed, 1);
    assert_eq!(queue.progress().done_through, 50, "every ticket covered");
    assert!(
        metrics
            .render()
            .contains("relbot_triggers_without_news_total{kind=\"bump\"} 49"),
        "{}",
        metrics.render()
    );
    // A tag the run did not see is news.
    let ticket = queue.submit(pushed("web", "1.2.0")).unwrap();
    queue.wait_done(ticket).await;
    assert_eq!(rec.calls(), vec!["bump web", "bump web"]);
}

#[tokio::test]
async fn nothing_runs_until_leader_then_one_run_covers_all() {
    let rec = Recorder::default();
    let (tx, leader) = LeaderState::channel(false);
    let queue = UpdateQueue::start(rec.clone(), leader, Arc::new(Metrics::new()));
    for i in 0..10 {
        queue.submit(sync(&format!("app{i}"), &format!("r{i}")));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(rec.calls().is_empty(), "a follower must not run updates");
    tx.send(true).unwrap();
    queue.wait_idle().await;
    assert_eq!(rec.calls().len(), 1);
    assert!(
        rec.calls()[0].ends_with("@r9"),
        "latest revision wins: {:?}",
        rec.calls()
    );
}

#[tokio::test]
async fn failures_are_recorded_in_last_run_and_metrics() {
    let rec = Recorder::default();
    let metrics = Arc::new(Metrics::new());
    let queue = UpdateQueue::start(rec.clone(), LeaderState::always(), metrics.clone());
    let ticket = queue
        .submit(Trigger::ContinueMerge {
            prs: Selector::only([12]),
            reason: "check_suite".into(),
        })
        .unwrap();
    queue.wait_done(ticket).await;
    let last = queue.last_run().unwrap();
    assert_eq!(
        last.errors,
        vec![(
            "continue_merge".to_string(),
            "checks still pending".to_string()
        )]
    );
    assert_eq!(metrics.updates.get(&["continue_merge", "error"]), 1.0);
    assert_eq!(metrics.triggers.get(&["continue_merge"]), 1.0);
}

#[tokio::test]
async fn empty_triggers_are_not_queued() {
    let queue = UpdateQueue::start(
        Recorder::default(),
        LeaderState::always(),
        Arc::new(Metrics::new()),
    );
    assert_eq!(
        queue.submit(Trigger::Sync {
            apps: Selector::Only(Default::default()),
            revision: None,
            reason: "x".into()
        }),
        None
    );
    assert_eq!(queue.stats().submitted, 0);
}

/// An executor that only stops when cancelled.
struct Stubborn {
    stopped_at_safe_point: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

impl Executor for Stubborn {
    async fn sync(&self, _: &SyncRequest, run: &RunContext) -> Result<(), RunError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        run.cancel.cancelled().await;
        self.stopped_at_safe_point.fetch_add(1, Ordering::SeqCst);
        Err(RunError::new("cancelled"))
    }
    async fn bump(&self, _: &PolicySelector, _: &RunContext) -> Result<(), RunError> {
        Ok(())
    }
    async fn continue_merge(&self, _: &PrSelector, _: &RunContext) -> Result<(), RunError> {
        Ok(())
    }
}

#[tokio::test]
async fn losing_leadership_cancels_and_requeues() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, leader) = LeaderState::channel(true);
    let queue = UpdateQueue::start(
        Stubborn {
            stopped_at_safe_point: stopped.clone(),
            runs: runs.clone(),
        },
        leader,
        Arc::new(Metrics::new()),
    );
    queue.submit(sync("a", "r1"));
    let mut rx = queue.inner.progress.subscribe();
    rx.wait_for(|p| p.running).await.unwrap();
    tx.send(false).unwrap();
    rx.wait_for(|p| !p.running).await.unwrap();
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    let progress = queue.progress();
    assert!(progress.pending, "abandoned work goes back to the queue");
    assert_eq!(progress.done_through, 0);
    assert_eq!(queue.stats().requeued, 1);
    // Leading again runs it again.
    tx.send(true).unwrap();
    rx.wait_for(|p| p.running).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let report = queue
        .shutdown(Duration::from_millis(50), Duration::from_secs(1))
        .await;
    assert_eq!(
        report,
        DrainReport {
            finished: false,
            abandoned: true,
            dropped_pending: false
        }
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 2);
    assert_eq!(
        queue.submit(sync("b", "r2")),
        None,
        "no triggers after shutdown"
    );
}

#[tokio::test]
async fn shutdown_lets_a_short_run_finish() {
    let rec = Recorder::default();
    let queue = UpdateQueue::start(rec.clone(), LeaderState::always(), Arc::new(Metrics::new()));
    queue.submit(sync("a", "r1"));
    queue.wait_idle().await;
    let report = queue
        .shutdown(Duration::from_secs(5), Duration::from_secs(1))
        .await;
    assert_eq!(
        report,
        DrainReport {
            finished: true,
            abandoned: false,
            dropped_pending: false
        }
    );
}
