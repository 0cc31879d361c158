//! The update queue inside one process: one worker task runs one
//! [`Work`] at a time; triggers that arrive meanwhile merge into the next run
//! (never rejected, never run twice). Across replicas the Lease in
//! [`super::lease`] decides who may run at all: the worker runs work only
//! while [`LeaderState`] says this replica leads, and cancels a run when
//! leadership is lost (the run is queued again so nothing it asked for is lost).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::trigger::{PolicySelector, PrSelector, SyncRequest, Trigger, Work};

/// Why one part of a run failed; shown in logs and on the status page, so it
/// must not carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

impl RunError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        RunError(message.to_string())
    }
}

/// What a run knows about itself.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Fires when leadership is lost or shutdown's grace ran out:
    /// implementations check it at safe points (between applications,
    /// before pushing) and stop there.
    pub cancel: CancellationToken,
    /// Tickets this run covers (`first..=last`).
    pub first_ticket: Ticket,
    pub last_ticket: Ticket,
    /// Why the run happens (the merged triggers' reasons), for run histories.
    pub reasons: Vec<String>,
}

/// What a run does. The server wires this to the reconciler and the bump
/// engine; tests use fakes that record calls.
pub trait Executor: Send + Sync + 'static {
    fn sync(
        &self,
        request: &SyncRequest,
        run: &RunContext,
    ) -> impl Future<Output = Result<(), RunError>> + Send;
    fn bump(
        &self,
        policies: &PolicySelector,
        run: &RunContext,
    ) -> impl Future<Output = Result<(), RunError>> + Send;
    fn continue_merge(
        &self,
        prs: &PrSelector,
        run: &RunContext,
    ) -> impl Future<Output = Result<(), RunError>> + Send;
    /// Whether a finished bump run already saw `tag` for `policy`: then a
    /// trigger announcing only that is no news and starts no run.
    fn has_seen(&self, _policy: &str, _tag: &str) -> bool {
        false
    }
}

/// Whether this replica may run updates. A single replica without a cluster
/// uses [`LeaderState::always`]; the Lease elector owns the sender otherwise.
#[derive(Debug, Clone)]
pub struct LeaderState(watch::Receiver<bool>);

impl LeaderState {
    /// Always the leader (no Lease: one process, or tests).
    pub fn always() -> Self {
        let (_tx, rx) = watch::channel(true);
        LeaderState(rx)
    }

    /// A state driven by `sender` (the Lease elector, or a test).
    pub fn channel(initial: bool) -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(initial);
        (tx, LeaderState(rx))
    }

    pub fn from_receiver(rx: watch::Receiver<bool>) -> Self {
        LeaderState(rx)
    }

    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves on the next change; never, once the sender is gone.
    async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when leadership is (or becomes) lost.
    async fn lost(&mut self) {
        if self.0.wait_for(|leader| !*leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A submission's number; runs cover contiguous ranges of them.
pub type Ticket = u64;

/// What the queue is doing, published on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub pending: bool,
    pub running: bool,
    /// Every ticket up to this one was covered by a run that finished.
    pub done_through: Ticket,
}

/// Counters over the queue's life (tests and the status page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub submitted: u64,
    /// Submissions merged into an already pending run.
    pub coalesced: u64,
    /// Runs started.
    pub executed: u64,
    /// Runs abandoned because leadership was lost (their work was re-queued).
    pub requeued: u64,
}

/// The last finished run, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub reasons: Vec<String>,
    /// Failures by part (`sync`, `bump`, `continue_merge`); empty when all succeeded.
    pub errors: Vec<(String, String)>,
    pub cancelled: bool,
}

/// How draining ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// The running update (if any) finished within the grace period.
    pub finished: bool,
    /// A run had to be cancelled (it stopped at a safe point or was dropped).
    pub abandoned: bool,
    /// Pending work that will not run in this process (the next leader's
    /// poll covers it).
    pub dropped_pending: bool,
}

struct State {
    pending: Option<Work>,
    next_ticket: Ticket,
    running: bool,
    accepting: bool,
    stats: QueueStats,
    last_run: Option<RunSummary>,
}

struct Inner {
    state: Mutex<State>,
    wake: Notify,
    progress: watch::Sender<Progress>,
    metrics: Arc<Metrics>,
    /// Stop taking new work.
    stopping: CancellationToken,
    /// Cancel the run in progress (shutdown grace exhausted).
    abort: CancellationToken,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &State) {
        self.progress.send_modify(|p| {
            p.pending = state.pending.is_some();
            p.running = state.running;
        });
    }
}

/// Handle to the queue; cheap to clone, shared by webhooks and schedules.
#[derive(Clone)]
pub struct UpdateQueue {
    inner: Arc<Inner>,
}

impl UpdateQueue {
    /// Starts the worker task (needs a tokio runtime).
    pub fn start<E: Executor>(executor: E, leader: LeaderState, metrics: Arc<Metrics>) -> Self {
        let (progress, _) = watch::channel(Progress::default());
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                pending: None,
                next_ticket: 1,
                running: false,
                accepting: true,
                stats: QueueStats::default(),
                last_run: None,
            }),
            wake: Notify::new(),
            progress,
            metrics,
            stopping: CancellationToken::new(),
            abort: CancellationToken::new(),
            worker: Mutex::new(None),
        });
        let handle = tokio::spawn(worker(inner.clone(), executor, leader));
        *inner.worker.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        UpdateQueue { inner }
    }

    /// Queues a trigger: merged into the pending run, or the start of one.
    /// Never blocks, never drops (until shutdown, when nothing runs any more).
    /// Returns None for a trigger that names nothing, or after shutdown.
    pub fn submit(&self, trigger: Trigger) -> Option<Ticket> {
        if trigger.is_empty() {
            return None;
        }
        let kind = trigger.kind();
        let mut guard = self.inner.lock();
        let state = &mut *guard;
        if !state.accepting {
            tracing::warn!(
                kind,
                reason = trigger.reason(),
                "update queue is shutting down; trigger ignored"
            );
            return None;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.stats.submitted += 1;
        tracing::debug!(ticket, kind, reason = trigger.reason(), "trigger queued");
        match &mut state.pending {
            Some(work) => {
                state.stats.coalesced += 1;
                self.inner.metrics.triggers_coalesced.inc(&[kind]);
                work.absorb(ticket, trigger);
            }
            None => state.pending = Some(Work::new(ticket, trigger)),
        }
        self.inner.metrics.triggers.inc(&[kind]);
        self.inner.publish(state);
        drop(guard);
        self.inner.wake.notify_one();
        Some(ticket)
    }

    pub fn stats(&self) -> QueueStats {
        self.inner.lock().stats
    }

    pub fn progress(&self) -> Progress {
        *self.inner.progress.borrow()
    }

    pub fn last_run(&self) -> Option<RunSummary> {
        self.inner.lock().last_run.clone()
    }

    /// Waits until nothing is pending or running.
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.progress.subscribe();
        let _ = rx.wait_for(|p| !p.pending && !p.running).await;
    }

    /// Waits until a run covering `ticket` has finished.
    pub async fn wait_done(&self, ticket: Ticket) {
        let mut rx = self.inner.progress.subscribe();
        let _ = rx.wait_for(|p| p.done_through >= ticket).await;
    }

    /// Drains: stops accepting triggers and starting runs, lets the running
    /// update finish for up to `grace`, then cancels it and gives it
    /// `abandon_grace` to stop at a safe point before dropping it.
    pub async fn shutdown(&self, grace: Duration, abandon_grace: Duration) -> DrainReport {
        let dropped_pending = {
            let mut state = self.inner.lock();
            state.accepting = false;
            state.pending.take().is_some()
        };
        self.inner.stopping.cancel();
        let Some(mut handle) = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return DrainReport {
                finished: true,
                abandoned: false,
                dropped_pending,
            };
        };
        if tokio::time::timeout(grace, &mut handle).await.is_ok() {
            return DrainReport {
                finished: true,
                abandoned: false,
                dropped_pending,
            };
        }
        tracing::warn!(grace = ?grace, "update still running at the end of the shutdown grace period; cancelling it");
        self.inner.abort.cancel();
        if tokio::time::timeout(abandon_grace, &mut handle)
            .await
            .is_err()
        {
            tracing::warn!("update did not stop at a safe point in time; dropping it");
            handle.abort();
        }
        DrainReport {
            finished: false,
            abandoned: true,
            dropped_pending,
        }
    }
}

async fn worker<E: Executor>(inner: Arc<Inner>, executor: E, mut leader: LeaderState) {
    loop {
        if inner.stopping.is_cancelled() {
            return;
        }
        if !leader.is_leader() {
            tokio::select! {
                _ = inner.stopping.cancelled() => return,
                _ = leader.changed() => continue,
            }
        }
        let work = {
            let mut state = inner.lock();
            let mut work = state.pending.take();
            // Triggers that queued up while a run went on are checked
            // against what it found: the same pushed tag announced again
            // (by any replica) runs nothing more.
            if let Some(pending) = &mut work {
                let dropped = pending.drop_bump_without_news(|p, t| executor.has_seen(p, t));
                if dropped > 0 {
                    tracing::info!(
                        triggers = dropped,
                        "bump triggers dropped: the last bump run already saw the tags they announce"
                    );
                    inner
                        .metrics
                        .triggers_without_news
                        .inc_by(&["bump"], dropped as f64);
                }
                if pending.is_idle() {
                    let last = pending.last_ticket;
                    work = None;
                    inner
                        .progress
                        .send_modify(|p| p.done_through = p.done_through.max(last));
                }
            }
            if work.is_some() {
                state.running = true;
                state.stats.executed += 1;
            }
            inner.publish(&state);
            work
        };
        let Some(work) = work else {
            tokio::select! {
                _ = inner.stopping.cancelled() => return,
                _ = inner.wake.notified() => {}
                _ = leader.changed() => {}
            }
            continue;
        };
        run_one(&inner, &executor, &mut leader, work).await;
    }
}

async fn run_one<E: Executor>(inner: &Inner, executor: &E, leader: &mut LeaderState, work: Work) {
    let started = Utc::now();
    tracing::info!(tickets = ?(work.first_ticket..=work.last_ticket), reasons = ?work.reasons, "update started");
    inner.metrics.update_running.set(&[], 1.0);
    let cancel = inner.abort.child_token();
    let mut lost_leadership = false;
    let errors = {
        let context = RunContext {
            cancel: cancel.clone(),
            first_ticket: work.first_ticket,
            last_ticket: work.last_ticket,
            reasons: work.reasons.clone(),
        };
        let run = execute(executor, &work, &context, &inner.metrics);
        tokio::pin!(run);
        loop {
            tokio::select! {
                errors = &mut run => break errors,
                _ = leader.lost(), if !lost_leadership => {
                    tracing::warn!("leadership lost during an update; asking it to stop at a safe point");
                    lost_leadership = true;
                    cancel.cancel();
                }
            }
        }
    };
    inner.metrics.update_running.set(&[], 0.0);
    let cancelled = cancel.is_cancelled();
    let summary = RunSummary {
        started,
        finished: Utc::now(),
        reasons: work.reasons.clone(),
        errors: errors.clone(),
        cancelled,
    };
    if errors.is_empty() && !cancelled {
        tracing::info!("update finished");
    } else {
        tracing::warn!(?errors, cancelled, "update finished with problems");
    }
    let mut state = inner.lock();
    state.running = false;
    state.last_run = Some(summary);
    let last_ticket = work.last_ticket;
    if lost_leadership {
        // Another replica leads now; if this one leads again later it must
        // still do what these triggers asked.
        state.stats.requeued += 1;
        match state.pending.take() {
            Some(mut newer) => {
                newer.absorb_work(work);
                state.pending = Some(newer);
            }
            None => state.pending = Some(work),
        }
    }
    inner.progress.send_modify(|p| {
        p.pending = state.pending.is_some();
        p.running = false;
        if !lost_leadership {
            p.done_through = p.done_through.max(last_ticket);
        }
    });
}

/// Runs the parts of a work item in order: sync (apply what git says),
/// then pending merges, then bumps (which produce new commits for the next sync).
async fn execute<E: Executor>(
    executor: &E,
    work: &Work,
    run: &RunContext,
    metrics: &Metrics,
) -> Vec<(String, String)> {
    let cancel = &run.cancel;
    let mut errors = Vec::new();
    if let Some(sync) = &work.sync {
        let started = Instant::now();
        let result = executor.sync(sync, run).await;
        record(metrics, "sync", started, &result, cancel, &mut errors);
    }
    if let Some(prs) = &work.continue_merge
        && !cancel.is_cancelled()
    {
        let started = Instant::now();
        let result = executor.continue_merge(prs, run).await;
        record(
            metrics,
            "continue_merge",
            started,
            &result,
            cancel,
            &mut errors,
        );
    }
    if let Some(policies) = &work.bump
        && !cancel.is_cancelled()
    {
        let started = Instant::now();
        let result = executor.bump(policies, run).await;
        record(metrics, "bump", started, &result, cancel, &mut errors);
    }
    errors
}

fn record(
    metrics: &Metrics,
    part: &'static str,
    started: Instant,
    result: &Result<(), RunError>,
    cancel: &CancellationToken,
    errors: &mut Vec<(String, String)>,
) {
    let label = match result {
        Ok(()) => "ok",
        Err(_) if cancel.is_cancelled() => "cancelled",
        Err(_) => "error",
    };
    metrics.updates.inc(&[part, label]);
    metrics
        .update_duration
        .observe(&[part], started.elapsed().as_secs_f64());
    if let Err(e) = result {
        errors.push((part.to_string(), e.to_string()));
    }
}

#[cfg(test)]
mod tests;
