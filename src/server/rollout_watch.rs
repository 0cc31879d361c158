//! Applications a sync left rolling out. serve's sync ends once the last
//! wave is applied, as Argo CD's does: waiting there for every rollout would
//! hold the one update at a time for minutes, and a thousand applications
//! would wait in turn. Instead an application whose health is still
//! Progressing is synced again shortly (a no-op that reads health and
//! writes only what changed), sooner at first and then less often, until
//! it settles. The first look after its `healthTimeout` fails the run if it
//! is still Progressing (decided before the run records its result, so the
//! status record, Events and notifications all say so); the poll retries it
//! from there. The re-check is an ordinary sync trigger, so it goes through
//! the queue, coalesces with others and never runs beside another update.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::health::HealthStatus;
use crate::sync::result::{RunPhase, SyncResult};

/// The first look again after a sync, and the longest gap between looks.
const FIRST_LOOK: Duration = Duration::from_secs(2);
const LONGEST_GAP: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
struct Rollout {
    revision: Option<String>,
    since: Instant,
    gap: Duration,
}

#[derive(Debug, Default)]
pub struct RolloutWatch {
    rolling: Mutex<HashMap<String, Rollout>>,
}

impl RolloutWatch {
    /// Takes in a finished sync: when its application should be looked at
    /// again, or None when it has settled (or failed: the failure is its
    /// answer, and the next poll or push retries it). A rollout past its
    /// `healthTimeout` is looked at once more, and that run fails if it is
    /// still Progressing (see [`overdue`](Self::overdue)).
    pub fn after_sync(&self, result: &SyncResult) -> Option<Duration> {
        let mut rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
        let app = &result.application;
        if result.phase == RunPhase::Failed || result.health != HealthStatus::Progressing {
            rolling.remove(app);
            return None;
        }
        let rollout = match rolling.get_mut(app) {
            Some(r) if r.revision == result.revision => {
                r.gap = (r.gap * 2).min(LONGEST_GAP);
                r
            }
            _ => rolling
                .entry(app.clone())
                .insert_entry(Rollout {
                    revision: result.revision.clone(),
                    since: Instant::now(),
                    gap: FIRST_LOOK,
                })
                .into_mut(),
        };
        Some(rollout.gap)
    }

    /// Asked before a sync of `revision`: the words to fail it with if it
    /// ends still Progressing, when `app` has been rolling out that revision
    /// for `health_timeout` or longer.
    pub fn overdue(&self, app: &str, revision: &str, health_timeout: Duration) -> Option<String> {
        let rolling = self.rolling.lock().unwrap_or_else(|e| e.into_inner());
        let rollout = rolling.get(app)?;
        (rollout.revision.as_deref() == Some(revision) && rollout.since.elapsed() >= health_timeout)
            .then(|| {
                format!(
                    "still Progressing {} s after it was applied (healthTimeout)",
                    health_timeout.as_secs()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::fixture::result_with;

    const TIMEOUT: Duration = Duration::from_secs(300);

    #[test]
    fn a_rolling_out_application_is_looked_at_again_less_and_less_often() {
        let watch = RolloutWatch::default();
        let progressing = result_with("web", "abc", RunPhase::Synced, HealthStatus::Progressing);
        let gaps: Vec<_> = (0..6)
            .map(|_| watch.after_sync(&progressing).unwrap().as_secs())
            .collect();
        assert_eq!(gaps, [2, 4, 8, 15, 15, 15]);
    }

    #[test]
    fn a_new_revision_starts_again_and_a_settled_or_failed_one_is_let_go() {
        let watch = RolloutWatch::default();
        let first = result_with("web", "abc", RunPhase::Synced, HealthStatus::Progressing);
        watch.after_sync(&first);
        watch.after_sync(&first);
        let next = result_with("web", "def", RunPhase::Synced, HealthStatus::Progressing);
        assert_eq!(watch.after_sync(&next), Some(FIRST_LOOK));
        for (phase, health) in [
            (RunPhase::Synced, HealthStatus::Healthy),
            (RunPhase::Synced, HealthStatus::Degraded),
            (RunPhase::Failed, HealthStatus::Progressing),
        ] {
            let settled = result_with("web", "def", phase, health);
            assert_eq!(watch.after_sync(&settled), None);
            // Let go: a later rollout starts from the first look.
            assert_eq!(watch.after_sync(&next), Some(FIRST_LOOK));
        }
    }

    #[test]
    fn a_rollout_past_its_health_timeout_fails_its_next_run_if_still_progressing() {
        let watch = RolloutWatch::default();
        assert_eq!(
            watch.overdue("web", "abc", Duration::ZERO),
            None,
            "not rolling out"
        );
        let progressing = result_with("web", "abc", RunPhase::Synced, HealthStatus::Progressing);
        watch.after_sync(&progressing);
        assert_eq!(
            watch.overdue("web", "abc", TIMEOUT),
            None,
            "within its time"
        );
        assert_eq!(
            watch.overdue("web", "def", Duration::ZERO),
            None,
            "a new revision starts again"
        );
        let why = watch.overdue("web", "abc", Duration::ZERO).unwrap();
        assert!(why.contains("still Progressing 0 s"), "{why}");
    }
}
