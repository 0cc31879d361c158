//! The state of each plan entry while a sync runs, and the waits between
//! its steps: CRDs `Established` after stage 1, a health gate after each wave.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::Value;

use super::live_plan::PlannedObject;
use super::plan::Change;
use super::result::Effect;
use super::settings::SyncSettings;
use crate::cluster::client::Cluster;
use crate::cluster::discovery::KindIndex;
use crate::cluster::health::{self, Health, HealthRules, HealthStatus};
use crate::progress::ProgressEvent;

/// The state of one plan entry while the run goes on.
pub(super) struct Entry {
    pub change: Change,
    pub object: PlannedObject,
    pub outcome: Effect,
    pub diff: Option<String>,
    /// Latest known state of the live object (for health).
    pub current: Latest,
    pub health: Option<Health>,
}

/// What the run last saw of an object. Until it writes or re-reads the
/// object, that is the live state the plan holds: kept there, not copied,
/// since a large application's live objects are most of a run's memory.
pub(super) enum Latest {
    AsPlanned,
    Seen(Value),
    Gone,
}

impl Entry {
    pub fn latest(&self) -> Option<&Value> {
        match &self.current {
            Latest::AsPlanned => self.object.live.as_ref(),
            Latest::Seen(value) => Some(value),
            Latest::Gone => None,
        }
    }

    /// The object's health now: from what the run last saw of it, or, for
    /// an unchanged object the run has not looked at since, as judged when
    /// it was listed (its live object is not kept).
    pub fn assess(&self, rules: &HealthRules) -> Health {
        match (&self.current, &self.object.health) {
            (Latest::AsPlanned, Some(listed)) if self.object.live.is_none() => listed.clone(),
            _ => self
                .latest()
                .map(|object| health::assess_with(object, rules))
                .unwrap_or_else(Health::missing),
        }
    }
}

/// Objects whose kind came from a CRD in this plan: resolve them now.
pub(super) fn resolve_pending(entries: &mut [Entry], members: &[usize], index: &KindIndex) {
    for &i in members {
        let e = &mut entries[i];
        if !e.object.kind.pending {
            continue;
        }
        let r = &e.object.kind.resource;
        if let Some(kind) = index.resolve(&r.group, &r.version, &r.kind) {
            e.object.kind = kind.clone();
        }
    }
}

/// Waits for the CRDs applied in stage 1 to be `Established`. `Ok(true)` when
/// any CRD was applied (so discovery must be refreshed).
pub(super) async fn wait_for_crds(
    cluster: &Cluster,
    entries: &mut [Entry],
    members: &[usize],
    settings: &SyncSettings,
) -> Result<bool, String> {
    let crds: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| {
            let e = &entries[i];
            e.change.key.kind == "CustomResourceDefinition" && e.outcome == Effect::Applied
        })
        .collect();
    if crds.is_empty() {
        return Ok(false);
    }
    let deadline = Instant::now() + settings.health_timeout;
    for i in crds {
        loop {
            let established = entries[i]
                .latest()
                .is_some_and(|c| health::assess(c).status.passes_gate());
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} was not Established in time",
                    entries[i].change.key
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let e = &entries[i];
            if let Ok(Some(now)) = cluster.get(&e.object.kind, None, &e.change.key.name).await {
                entries[i].current = Latest::Seen(now);
            }
        }
    }
    Ok(true)
}

/// Which step a health gate is for, to say so in progress events.
#[derive(Clone, Copy)]
pub(super) struct Gate<'a> {
    pub app: &'a str,
    pub step: &'a str,
}

/// Waits until every object of a step passes the gate; fails fast on
/// Degraded, gives up after the application's health timeout.
pub(super) async fn health_gate(
    cluster: &Cluster,
    entries: &mut [Entry],
    members: &[usize],
    settings: &SyncSettings,
    gate: Gate<'_>,
) -> Result<(), String> {
    let deadline = Instant::now() + settings.health_timeout;
    loop {
        let mut waiting = Vec::new();
        for &i in members {
            let e = &mut entries[i];
            if matches!(e.outcome, Effect::Held(_)) {
                continue;
            }
            let h = e.assess(&settings.health_rules);
            if h.status == HealthStatus::Degraded {
                let message = format!("{} is Degraded: {}", e.change.key, h.message);
                e.health = Some(h);
                return Err(message);
            }
            if !h.status.passes_gate() {
                waiting.push(i);
            }
            e.health = Some(h);
        }
        if waiting.is_empty() {
            return Ok(());
        }
        settings.progress.emit(|| ProgressEvent::WaitingForHealth {
            app: gate.app.to_string(),
            name: gate.step.to_string(),
            waiting: waiting.len(),
        });
        if Instant::now() > deadline {
            let names: Vec<String> = waiting
                .iter()
                .take(5)
                .map(|&i| {
                    let e = &entries[i];
                    let h = e
                        .health
                        .as_ref()
                        .map(|h| format!("{} ({})", h.status.as_str(), h.message))
                        .unwrap_or_default();
                    format!("{} {h}", e.change.key)
                })
                .collect();
            return Err(format!(
                "not healthy after {}s: {}",
                settings.health_timeout.as_secs(),
                names.join(", ")
            ));
        }
        tokio::time::sleep(settings.poll_interval).await;
        let refreshed: Vec<(usize, Option<Value>)> = stream::iter(waiting)
            .map(|i| {
                let e = &entries[i];
                async move {
                    let key = &e.change.key;
                    (
                        i,
                        cluster
                            .get(&e.object.kind, key.namespace.as_deref(), &key.name)
                            .await
                            .ok()
                            .flatten(),
                    )
                }
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        for (i, now) in refreshed {
            entries[i].current = now.map_or(Latest::Gone, Latest::Seen);
        }
    }
}
