//! Time-based triggers: the repository poll (interval ± jitter; webhooks only
//! make a run sooner) and per-policy cron schedules. Both only submit
//! triggers; the update queue merges them with everything else.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::queue::UpdateQueue;
use super::trigger::{Selector, Trigger};
use crate::config::CronSchedule;

/// Where schedules send triggers: the update queue, or a channel in tests.
pub trait TriggerSink: Send + Sync + 'static {
    fn send(&self, trigger: Trigger);
}

impl TriggerSink for UpdateQueue {
    fn send(&self, trigger: Trigger) {
        self.submit(trigger);
    }
}

impl TriggerSink for mpsc::UnboundedSender<Trigger> {
    fn send(&self, trigger: Trigger) {
        let _ = mpsc::UnboundedSender::send(self, trigger);
    }
}

/// Default poll jitter: ±10 % so replicas and restarts spread out.
pub const DEFAULT_JITTER: f64 = 0.1;

/// `interval` scaled by a random factor in `[1 - jitter, 1 + jitter]`.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.9);
    let factor = 1.0 + (rand::random::<f64>() * 2.0 - 1.0) * jitter;
    interval.mul_f64(factor)
}

/// Submits a full sync every `interval` (± `jitter`) until `shutdown`.
/// The interval follows config reloads through the watch channel.
pub async fn run_poll(
    sink: impl TriggerSink,
    mut interval: watch::Receiver<Duration>,
    jitter: f64,
    shutdown: CancellationToken,
) {
    loop {
        let pause = jittered(*interval.borrow_and_update(), jitter);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            // A new interval takes effect at once (a shorter one must not
            // wait out the old, longer pause).
            changed = interval.changed() => {
                if changed.is_err() {
                    // Sender gone: keep the last interval.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => sink.send(Trigger::sync_all("poll")),
                    }
                }
            }
            _ = tokio::time::sleep(pause) => sink.send(Trigger::sync_all("poll")),
        }
    }
}

/// A policy's cron schedule.
pub type PolicySchedule = (String, CronSchedule);

/// The next instant any schedule fires strictly after `after`, and every
/// policy due then.
pub fn next_firing(
    schedules: &[PolicySchedule],
    after: DateTime<Utc>,
) -> Option<(DateTime<Utc>, BTreeSet<String>)> {
    let mut best: Option<(DateTime<Utc>, BTreeSet<String>)> = None;
    for (name, schedule) in schedules {
        let Some(at) = schedule.next_after(after) else {
            continue;
        };
        match &mut best {
            Some((t, names)) if *t == at => {
                names.insert(name.clone());
            }
            Some((t, _)) if *t < at => {}
            _ => best = Some((at, BTreeSet::from([name.clone()]))),
        }
    }
    best
}

/// Wall-clock source; tests drive it from tokio's paused clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Submits a bump of the policies due at each cron firing until `shutdown`.
/// Schedules follow config reloads through the watch channel.
pub async fn run_cron(
    sink: impl TriggerSink,
    mut schedules: watch::Receiver<Vec<PolicySchedule>>,
    clock: Clock,
    shutdown: CancellationToken,
) {
    let mut after = clock();
    loop {
        let next = next_firing(&schedules.borrow_and_update(), after);
        let Some((at, due)) = next else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = schedules.changed() => {
                    if changed.is_err() { shutdown.cancelled().await; return; }
                    after = clock();
                    continue;
                }
            }
        };
        let wait = (at - clock()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = schedules.changed() => {
                if changed.is_err() {
                    // No more changes: just keep firing the last schedules.
                    let last = schedules.borrow().clone();
                    run_cron_fixed(sink, last, clock, shutdown, after).await;
                    return;
                }
                after = clock();
            }
            _ = tokio::time::sleep(wait) => {
                fire(&sink, due);
                // Never fire the same instant twice, even if the sleep woke early.
                after = at.max(clock());
            }
        }
    }
}

async fn run_cron_fixed(
    sink: impl TriggerSink,
    schedules: Vec<PolicySchedule>,
    clock: Clock,
    shutdown: CancellationToken,
    mut after: DateTime<Utc>,
) {
    while let Some((at, due)) = next_firing(&schedules, after) {
        let wait = (at - clock()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {
                fire(&sink, due);
                after = at.max(clock());
            }
        }
    }
    shutdown.cancelled().await;
}

fn fire(sink: &impl TriggerSink, due: BTreeSet<String>) {
    tracing::debug!(policies = ?due, "cron schedule fired");
    sink.send(Trigger::bump(Selector::Only(due), "schedule"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedules() -> Vec<PolicySchedule> {
        vec![
            (
                "every-5".to_string(),
                CronSchedule::parse("*/5 * * * *").unwrap(),
            ),
            (
                "hourly".to_string(),
                CronSchedule::parse("0 * * * *").unwrap(),
            ),
        ]
    }

    #[test]
    fn next_firing_groups_policies_due_together() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 10, 57, 0).unwrap();
        let (at, due) = next_firing(&schedules(), t).unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap());
        assert_eq!(
            due,
            BTreeSet::from(["every-5".to_string(), "hourly".to_string()])
        );
        let (at, due) = next_firing(&schedules(), at).unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 23, 11, 5, 0).unwrap());
        assert_eq!(due, BTreeSet::from(["every-5".to_string()]));
        assert!(next_firing(&[], t).is_none());
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(180), 0.1);
            assert!(
                d >= Duration::from_secs(162) && d <= Duration::from_secs(198),
                "{d:?}"
            );
        }
    }

    /// A clock that follows tokio's (paused) time from a fixed start.
    fn paused_clock(start: DateTime<Utc>) -> Clock {
        let origin = tokio::time::Instant::now();
        Arc::new(move || start + chrono::Duration::from_std(origin.elapsed()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn cron_fires_each_schedule_on_time() {
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 30).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_schedules_tx, schedules_rx) = watch::channel(schedules());
        let shutdown = CancellationToken::new();
        let clock = paused_clock(start);
        let task = tokio::spawn(run_cron(tx, schedules_rx, clock.clone(), shutdown.clone()));
        // One virtual hour.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        let mut fired = Vec::new();
        while let Ok(trigger) = rx.try_recv() {
            fired.push(trigger);
        }
        // 10:05, 10:10, … 11:00 → 12 firings; the last names both policies.
        assert_eq!(fired.len(), 12, "{fired:?}");
        assert_eq!(
            fired.last().unwrap(),
            &Trigger::bump(
                Selector::only(["every-5".to_string(), "hourly".to_string()]),
                "schedule"
            )
        );
        assert!(fired[..11].iter().all(|t| matches!(t, Trigger::Bump { policies, .. } if !policies.contains(&"hourly".to_string()))));
    }

    #[tokio::test(start_paused = true)]
    async fn cron_follows_schedule_changes() {
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 30).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (schedules_tx, schedules_rx) = watch::channel(Vec::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_cron(
            tx,
            schedules_rx,
            paused_clock(start),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(rx.try_recv().is_err(), "no schedules, no triggers");
        schedules_tx
            .send(vec![(
                "hourly".to_string(),
                CronSchedule::parse("0 * * * *").unwrap(),
            )])
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert!(matches!(rx.try_recv(), Ok(Trigger::Bump { .. })));
        assert!(rx.try_recv().is_err(), "exactly one firing at 11:00");
    }

    #[tokio::test(start_paused = true)]
    async fn poll_submits_full_syncs_with_jitter() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_interval_tx, interval_rx) = watch::channel(Duration::from_secs(180));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_poll(tx, interval_rx, DEFAULT_JITTER, shutdown.clone()));
        // 30 minutes: between 30/3.3 ≈ 9 and 30/2.7 ≈ 11 polls.
        tokio::time::sleep(Duration::from_secs(1800)).await;
        shutdown.cancel();
        task.await.unwrap();
        let mut n = 0;
        while let Ok(trigger) = rx.try_recv() {
            assert_eq!(trigger, Trigger::sync_all("poll"));
            n += 1;
        }
        assert!((9..=11).contains(&n), "{n} polls");
    }
}
