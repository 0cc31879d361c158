//! Graceful shutdown: on SIGTERM (or SIGINT) stop accepting requests, let the
//! running update finish or stop it at a safe point, then release the Lease —
//! all within Kubernetes' default 30 s termination grace period.
//!
//! Order matters: the Lease is renewed until the queue has drained, so no
//! other replica can start an update while this one still runs one.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::lease::ElectorHandle;
use super::queue::{DrainReport, UpdateQueue};

/// Everything must be done by then (Kubernetes sends SIGKILL at 30 s).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(25);
/// Reserved at the end of the deadline for releasing the Lease.
const RELEASE_BUDGET: Duration = Duration::from_secs(2);
/// Time a cancelled update gets to reach a safe point.
const ABANDON_BUDGET: Duration = Duration::from_secs(3);

/// Waits for SIGTERM or SIGINT; returns the signal's name.
pub async fn termination_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops relbot");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Cancels `token` when a termination signal arrives (the HTTP server's
/// graceful shutdown and the schedules follow the token).
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let signal = termination_signal().await;
        tracing::info!(signal, "shutting down");
        token.cancel();
    });
}

/// How the drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    pub queue: DrainReport,
    /// None without a Lease (single replica).
    pub lease_released: Option<bool>,
    pub elapsed: Duration,
}

/// Drains the queue within `deadline` (minus the release budget), then
/// releases the Lease. Call after the HTTP server stopped accepting.
pub async fn drain(
    queue: &UpdateQueue,
    elector: Option<ElectorHandle>,
    deadline: Duration,
) -> DrainOutcome {
    let started = Instant::now();
    let abandon = ABANDON_BUDGET.min(deadline / 4);
    let grace = deadline
        .saturating_sub(RELEASE_BUDGET.min(deadline / 4))
        .saturating_sub(abandon);
    let report = queue.shutdown(grace, abandon).await;
    let lease_released = match elector {
        None => None,
        Some(handle) => {
            let budget = deadline
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(100));
            match tokio::time::timeout(budget, handle.stop_and_release()).await {
                Ok(Ok(())) => Some(true),
                Ok(Err(e)) => {
                    tracing::warn!("{e}; the other replicas take over when the Lease expires");
                    Some(false)
                }
                Err(_) => {
                    tracing::warn!(
                        "releasing the Lease timed out; the other replicas take over when it expires"
                    );
                    Some(false)
                }
            }
        }
    };
    let outcome = DrainOutcome {
        queue: report,
        lease_released,
        elapsed: started.elapsed(),
    };
    tracing::info!(?outcome, "drained");
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::metrics::Metrics;
    use crate::server::queue::{Executor, LeaderState, RunContext, RunError};
    use crate::server::trigger::{PolicySelector, PrSelector, SyncRequest, Trigger};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Takes `work` unless cancelled first; records whether it finished.
    struct Slow {
        work: Duration,
        finished: Arc<AtomicBool>,
    }

    impl Executor for Slow {
        async fn sync(&self, _: &SyncRequest, run: &RunContext) -> Result<(), RunError> {
            tokio::select! {
                _ = tokio::time::sleep(self.work) => { self.finished.store(true, Ordering::SeqCst); Ok(()) }
                _ = run.cancel.cancelled() => Err(RunError::new("stopped at a safe point")),
            }
        }
        async fn bump(&self, _: &PolicySelector, _: &RunContext) -> Result<(), RunError> {
            Ok(())
        }
        async fn continue_merge(&self, _: &PrSelector, _: &RunContext) -> Result<(), RunError> {
            Ok(())
        }
    }

    async fn running_queue(work: Duration) -> (UpdateQueue, Arc<AtomicBool>) {
        let finished = Arc::new(AtomicBool::new(false));
        let queue = UpdateQueue::start(
            Slow {
                work,
                finished: finished.clone(),
            },
            LeaderState::always(),
            Arc::new(Metrics::new()),
        );
        queue.submit(Trigger::sync_all("test"));
        while !queue.progress().running {
            tokio::task::yield_now().await;
        }
        (queue, finished)
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_update_finishes_before_exit() {
        let (queue, finished) = running_queue(Duration::from_secs(5)).await;
        let outcome = drain(&queue, None, DRAIN_DEADLINE).await;
        assert!(finished.load(Ordering::SeqCst));
        assert!(outcome.queue.finished && !outcome.queue.abandoned);
        assert!(outcome.elapsed < Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_update_is_abandoned_within_the_deadline() {
        let (queue, finished) = running_queue(Duration::from_secs(600)).await;
        let outcome = drain(&queue, None, DRAIN_DEADLINE).await;
        assert!(!finished.load(Ordering::SeqCst));
        assert!(outcome.queue.abandoned);
        assert!(outcome.elapsed <= DRAIN_DEADLINE, "{:?}", outcome.elapsed);
        assert_eq!(outcome.lease_released, None);
    }
}
