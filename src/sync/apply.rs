//! Carrying out a plan: stage by stage and wave by wave, server-side apply
//! with bounded concurrency, CRDs waited for until `Established` (then the
//! kinds they add are discovered), a health gate after each wave, prune in
//! reverse order last. A run that stops part-way says exactly what it
//! applied and what it did not; the next run plans from the cluster again,
//! so it converges.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{StreamExt, stream};
use serde_json::Value;

use super::diff::object_diff;
use super::engine::RunSettings;
use super::inventory::{self, recreate_allowed};
use super::plan::{Action, Change};
use super::planner::{LivePlan, PlanOptions, PlannedObject, kind_id, plan_application};
use super::result::{ObjectOutcome, Outcome, RunPhase, SyncResult, Timings};
use super::status;
use crate::cluster::client::{ApiFailure, Cluster};
use crate::cluster::discovery::KindIndex;
use crate::cluster::health::{self, Health, HealthRules, HealthStatus};
use crate::config::Application;
use crate::manifest::Manifest;
use crate::progress::{Progress, ProgressEvent};

/// Per-application settings of a sync.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub concurrency: usize,
    pub status_namespace: String,
    /// How long a wave may take to become healthy.
    pub health_timeout: Duration,
    /// How often an unhealthy wave is looked at again.
    pub poll_interval: Duration,
    /// Keep the result in the status ConfigMap.
    pub record_status: bool,
    /// Who hears how the run goes (nobody by default).
    pub progress: Progress,
    /// relbot.yaml's per-kind health rules, tried before the built-in ones.
    pub health_rules: HealthRules,
    /// Gate the last wave on health as well (see `RunSettings`).
    pub wait_for_last_wave: bool,
    /// What asked for this run, for the status record's history.
    pub trigger: String,
}

impl SyncSettings {
    pub fn new(app: &Application, run: &RunSettings) -> Self {
        SyncSettings {
            concurrency: run.concurrency.max(1),
            status_namespace: run.status_namespace.clone(),
            health_timeout: app.sync.health_timeout.0,
            poll_interval: Duration::from_millis(500),
            record_status: true,
            progress: run.progress.clone(),
            health_rules: run.health_rules.clone(),
            wait_for_last_wave: run.wait_for_last_wave,
            trigger: "relbot sync".into(),
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The state of one plan entry while the run goes on.
struct Entry {
    change: Change,
    object: PlannedObject,
    outcome: Outcome,
    diff: Option<String>,
    /// Latest known state of the live object (for health).
    current: Latest,
    health: Option<Health>,
}

/// What the run last saw of an object. Until it writes or re-reads the
/// object, that is the live state the plan holds: kept there, not copied,
/// since a large application's live objects are most of a run's memory.
enum Latest {
    AsPlanned,
    Seen(Value),
    Gone,
}

impl Entry {
    fn latest(&self) -> Option<&Value> {
        match &self.current {
            Latest::AsPlanned => self.object.live.as_ref(),
            Latest::Seen(value) => Some(value),
            Latest::Gone => None,
        }
    }
}

/// Syncs one application: plan (no dry-runs: the apply validates), apply,
/// gate, prune, record.
pub async fn sync_application(
    cluster: &Cluster,
    index: &KindIndex,
    app: &Application,
    manifests: &[Manifest],
    revision: Option<&str>,
    settings: &SyncSettings,
) -> SyncResult {
    let started_at = Utc::now();
    let start = Instant::now();
    let before = cluster.counts();
    let progress = &settings.progress;
    progress.emit(|| ProgressEvent::Planning {
        app: app.name.clone(),
        objects: manifests.len(),
    });
    let previous = status::read(cluster.read_only(), &settings.status_namespace, &app.name).await;
    let previous_kinds = previous
        .as_ref()
        .map(|p| p.kinds.clone())
        .unwrap_or_default();
    // Every change is server-validated before the first write: one rejected
    // object stops the run with nothing of it applied (never half a wave).
    let options = PlanOptions {
        validate: true,
        concurrency: settings.concurrency,
    };
    let LivePlan {
        plan,
        objects,
        kinds,
    } = plan_application(
        cluster.read_only(),
        index,
        app,
        manifests,
        revision,
        &previous_kinds,
        options,
    )
    .await;
    let plan_ms = ms(start.elapsed());

    let mut errors: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
    let notes = plan.notes.clone();
    let mut entries: Vec<Entry> = plan
        .changes
        .into_iter()
        .zip(objects)
        .map(|(change, object)| {
            let outcome = if change.action == Action::Unchanged {
                Outcome::Unchanged
            } else if let Some(why) = &change.held {
                // An immutable field changed without leave to re-create: git
                // cannot be applied, which is a failure, not a choice to wait.
                if change.action == Action::Recreate {
                    Outcome::Failed(why.clone())
                } else {
                    Outcome::Held(why.clone())
                }
            } else {
                Outcome::NotAttempted("the run stopped before reaching it".into())
            };
            Entry {
                diff: change.diff.clone(),
                change,
                object,
                outcome,
                current: Latest::AsPlanned,
                health: None,
            }
        })
        .collect();

    let mut timings = Timings {
        plan_ms,
        ..Default::default()
    };
    let mut stopped = !errors.is_empty();
    if stopped {
        for e in entries
            .iter_mut()
            .filter(|e| matches!(e.outcome, Outcome::NotAttempted(_)))
        {
            e.outcome = Outcome::NotAttempted("the plan has errors; nothing was applied".into());
        }
    }
    let any_write = entries.iter().any(|e| e.change.writes());

    // Steps in order: (stage, wave) → entry indices (prunes excluded).
    let mut steps: BTreeMap<(u8, i64), Vec<usize>> = BTreeMap::new();
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.change.action != Action::Prune)
    {
        steps.entry(e.change.phase.step()).or_default().push(i);
    }
    let mut index = index.clone();
    let apply_start = Instant::now();
    let mut health_time = Duration::ZERO;
    // For progress: objects written of all this run writes (prunes aside).
    let total_writes = steps
        .values()
        .flatten()
        .filter(|&&i| entries[i].change.writes())
        .count();
    let mut written = 0;
    for (step, ((stage, wave), members)) in steps.iter().enumerate() {
        if stopped {
            break;
        }
        let step_name = if *stage < 3 {
            format!("stage {stage}")
        } else {
            format!("wave {wave}")
        };
        // Kinds from CRDs applied in stage 1 are served now.
        if *stage > 1 {
            resolve_pending(&mut entries, members, &index);
        }
        let to_write: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| entries[i].change.writes())
            .collect();
        progress.emit(|| ProgressEvent::Wave {
            app: app.name.clone(),
            step: step + 1,
            steps: steps.len(),
            name: step_name.clone(),
            writes: to_write.len(),
            total: total_writes,
        });
        let results: Vec<(usize, Result<Value, String>)> = stream::iter(to_write)
            .map(|i| {
                let e = &entries[i];
                async move { (i, write_entry(cluster, &e.change, &e.object).await) }
            })
            .buffer_unordered(settings.concurrency)
            .inspect(|_| {
                written += 1;
                progress.emit(|| ProgressEvent::Applied {
                    app: app.name.clone(),
                    done: written,
                    total: total_writes,
                });
            })
            .collect()
            .await;
        let mut failed = 0;
        for (i, result) in results {
            let e = &mut entries[i];
            match result {
                Ok(after) => {
                    if e.change.action != Action::Create {
                        e.diff = object_diff(&e.change.key, e.object.live.as_ref(), &after);
                    }
                    e.outcome = Outcome::Applied;
                    e.current = Latest::Seen(after);
                }
                Err(message) => {
                    failed += 1;
                    e.outcome = Outcome::Failed(message);
                }
            }
        }
        if failed > 0 {
            errors.push(format!(
                "{step_name}: {failed} object(s) failed to apply; later waves were not applied"
            ));
            stopped = true;
            break;
        }
        if *stage == 1 {
            let gate_start = Instant::now();
            match wait_for_crds(cluster, &mut entries, members, settings).await {
                Ok(true) => match cluster.discover().await {
                    Ok(fresh) => index = fresh,
                    Err(e) => {
                        errors.push(format!("rediscovery after applying CRDs failed: {e}"));
                        stopped = true;
                    }
                },
                Ok(false) => {}
                Err(message) => {
                    errors.push(message);
                    stopped = true;
                }
            }
            health_time += gate_start.elapsed();
        }
        let last_step = step + 1 == steps.len();
        if any_write && !stopped && (!last_step || settings.wait_for_last_wave) {
            let gate_start = Instant::now();
            let gate = Gate {
                app: &app.name,
                step: &step_name,
            };
            if let Err(message) = health_gate(cluster, &mut entries, members, settings, gate).await
            {
                errors.push(format!(
                    "{step_name}: {message}; later waves were not applied"
                ));
                stopped = true;
            }
            health_time += gate_start.elapsed();
        }
    }
    timings.health_ms = ms(health_time);
    timings.apply_ms = ms(apply_start.elapsed()).saturating_sub(timings.health_ms);

    // Prune, in the plan's (reverse) order, only after everything else went in.
    let prune_start = Instant::now();
    let prunes: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].change.action == Action::Prune && entries[i].change.writes())
        .collect();
    if stopped {
        for &i in &prunes {
            entries[i].outcome =
                Outcome::NotAttempted("prune waits for a run that applies everything".into());
        }
    } else {
        let total = prunes.len();
        let mut pruned = 0;
        if total > 0 {
            progress.emit(|| ProgressEvent::Pruning {
                app: app.name.clone(),
                done: 0,
                total,
            });
        }
        let results: Vec<(usize, Result<(), ApiFailure>)> = stream::iter(prunes)
            .map(|i| {
                let e = &entries[i];
                let uid = e
                    .object
                    .live
                    .as_ref()
                    .and_then(|l| l["metadata"]["uid"].as_str().map(str::to_string));
                async move {
                    let key = &e.change.key;
                    (
                        i,
                        cluster
                            .delete(
                                &e.object.kind,
                                key.namespace.as_deref(),
                                &key.name,
                                uid.as_deref(),
                            )
                            .await,
                    )
                }
            })
            .buffer_unordered(settings.concurrency)
            .inspect(|_| {
                pruned += 1;
                progress.emit(|| ProgressEvent::Pruning {
                    app: app.name.clone(),
                    done: pruned,
                    total,
                });
            })
            .collect()
            .await;
        for (i, result) in results {
            let e = &mut entries[i];
            match result {
                Ok(()) => {
                    e.outcome = Outcome::Applied;
                    e.current = Latest::Gone;
                }
                Err(failure) => {
                    errors.push(format!("prune {}: {failure}", e.change.key));
                    e.outcome = Outcome::Failed(failure.to_string());
                }
            }
        }
    }
    timings.prune_ms = ms(prune_start.elapsed());

    // Health of everything desired, from what we last saw.
    for e in entries
        .iter_mut()
        .filter(|e| e.change.action != Action::Prune)
    {
        if e.health.is_none() {
            e.health = Some(match e.latest() {
                Some(object) => health::assess_with(object, &settings.health_rules),
                None => Health::missing(),
            });
        }
    }
    let health = health::worst(
        entries
            .iter()
            .filter_map(|e| e.health.as_ref().map(|h| &h.status)),
    );
    let held = entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Held(_)));
    let failed = entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Failed(_)));
    let phase = if stopped || failed || !errors.is_empty() {
        RunPhase::Failed
    } else if held {
        RunPhase::OutOfSync
    } else {
        RunPhase::Synced
    };

    // The inventory: kinds desired now, plus kinds of objects still owned.
    let mut inventory: BTreeSet<String> = kinds;
    for e in entries
        .iter()
        .filter(|e| e.change.action == Action::Prune && e.outcome != Outcome::Applied)
    {
        inventory.insert(kind_id(&e.object.kind));
    }
    let inventory: Vec<String> = inventory.into_iter().collect();

    let objects = entries
        .into_iter()
        .map(|e| ObjectOutcome {
            key: e.change.key,
            api_version: e.change.api_version,
            origin: e.change.origin,
            action: e.change.action,
            reason: e.change.reason,
            outcome: e.outcome,
            diff: e.diff,
            health: e.health,
        })
        .collect();
    let mut result = SyncResult {
        application: app.name.clone(),
        revision: revision.map(str::to_string),
        server: cluster.server().to_string(),
        started_at,
        phase,
        health,
        objects,
        errors,
        notes,
        requests: Default::default(),
        status_recorded: false,
        timings,
    };
    if settings.record_status {
        let written = status::write(
            cluster,
            &settings.status_namespace,
            &result,
            &inventory,
            previous.as_ref(),
            &settings.trigger,
        )
        .await;
        match written {
            Ok(written) => result.status_recorded = written,
            Err(e) => result.notes.push(e.to_string()),
        }
    }
    result.timings.total_ms = ms(start.elapsed());
    result.requests = cluster.counts().since(&before);
    progress.emit(|| ProgressEvent::AppFinished {
        app: app.name.clone(),
    });
    result
}

/// Objects whose kind came from a CRD in this plan: resolve them now.
fn resolve_pending(entries: &mut [Entry], members: &[usize], index: &KindIndex) {
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

/// One write, with one quick retry of a transient failure, and a
/// delete-and-create when an immutable field changed and the object allows it.
async fn write_entry(
    cluster: &Cluster,
    change: &Change,
    object: &PlannedObject,
) -> Result<Value, String> {
    let key = &change.key;
    let Some(desired) = &object.desired else {
        return Err("nothing to apply".into());
    };
    if object.kind.pending {
        return Err(format!(
            "its kind {} is still not served after its CustomResourceDefinition was applied",
            object.kind.resource.kind
        ));
    }
    let namespace = key.namespace.as_deref();
    let apply = || cluster.apply(&object.kind, namespace, &key.name, &desired.body);
    let mut result = apply().await;
    if let Err(failure) = &result
        && failure.is_transient()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = apply().await;
    }
    match result {
        Ok(after) => Ok(after),
        Err(failure) if failure.is_immutable() || change.action == Action::Recreate => {
            if !recreate_allowed(&desired.body) {
                return Err(format!(
                    "an immutable field changed ({}); annotate it {}: Replace=true to let relbot delete and re-create it",
                    failure.message,
                    inventory::SYNC_OPTIONS_ANNOTATION
                ));
            }
            let uid = object
                .live
                .as_ref()
                .and_then(|l| l["metadata"]["uid"].as_str());
            cluster
                .delete(&object.kind, namespace, &key.name, uid)
                .await
                .map_err(|f| format!("delete for re-create: {f}"))?;
            // Wait for the old object to be gone (finalizers) before creating.
            let deadline = Instant::now() + Duration::from_secs(60);
            while cluster
                .get(&object.kind, namespace, &key.name)
                .await
                .map_err(|f| f.to_string())?
                .is_some()
            {
                if Instant::now() > deadline {
                    return Err("re-create: the old object was still there after 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            apply()
                .await
                .map_err(|f| format!("create after delete: {f}"))
        }
        Err(failure) => Err(failure.to_string()),
    }
}

/// Waits for the CRDs applied in stage 1 to be `Established`. `Ok(true)` when
/// any CRD was applied (so discovery must be refreshed).
async fn wait_for_crds(
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
            e.change.key.kind == "CustomResourceDefinition" && e.outcome == Outcome::Applied
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
struct Gate<'a> {
    app: &'a str,
    step: &'a str,
}

/// Waits until every object of a step passes the gate; fails fast on
/// Degraded, gives up after the application's health timeout.
async fn health_gate(
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
            if matches!(e.outcome, Outcome::Held(_)) {
                continue;
            }
            let h = e
                .latest()
                .map(|object| health::assess_with(object, &settings.health_rules))
                .unwrap_or_else(Health::missing);
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
