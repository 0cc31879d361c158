//! Carrying out a plan: stage by stage and wave by wave, server-side apply
//! with bounded concurrency, CRDs waited for until `Established` (then the
//! kinds they add are discovered), a health gate after each wave, prune in
//! reverse order last. A run that stops part-way says exactly what it
//! applied and what it did not; the next run plans from the cluster again,
//! so it converges.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use serde_json::Value;

use super::diff::object_diff;
use super::gate::{Entry, Gate, Latest, health_gate, resolve_pending, wait_for_crds};
use super::hook_run::HookRunner;
use super::hooks::HookPhase;
use super::inventory::kind_id;
use super::plan::{Action, Plan};
use super::planner::{LivePlan, PlanOptions, PlannedObject, plan_application};
use super::result::{ObjectOutcome, Outcome, RunPhase, SyncResult, Timings};
use super::settings::SyncSettings;
use super::status::{self, StoredStatus};
use super::write::write_entry;
use crate::cluster::client::{ApiFailure, Cluster, ReadOnlyCluster, RequestCounts};
use crate::cluster::discovery::KindIndex;
use crate::cluster::health::{self, Health};
use crate::config::Application;
use crate::manifest::Manifest;
use crate::progress::ProgressEvent;

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A plan made for a sync, with what carrying it out needs besides the
/// plan itself: the live objects, the inventory after the sync, the last
/// stored status and where the run's clock and request counters started.
/// Made through a read-only handle, so a dry-run and a sync plan alike.
#[derive(Debug)]
pub struct StagedPlan {
    pub plan: Plan,
    objects: Vec<PlannedObject>,
    kinds: BTreeSet<String>,
    previous: Option<StoredStatus>,
    started_at: DateTime<Utc>,
    start: Instant,
    before: RequestCounts,
    plan_ms: u64,
}

/// Syncs one application: plan (every change server-validated), apply,
/// gate, prune, record.
pub async fn sync_application(
    cluster: &Cluster,
    index: &KindIndex,
    app: &Application,
    manifests: &[Manifest],
    revision: Option<&str>,
    settings: &SyncSettings,
) -> SyncResult {
    let staged = plan_sync(
        cluster.read_only(),
        cluster.read_only(),
        index,
        app,
        manifests,
        revision,
        settings,
    )
    .await;
    apply_plan(
        cluster, cluster, index, app, manifests, staged, revision, settings,
    )
    .await
}

/// Plans one application against the live cluster: reads its last status
/// (for the inventory of kinds to look for prunes in) and server-validates
/// every change, never writing. `records` holds the status records
/// (relbot's own cluster, which differs from `cluster` for a destination).
pub async fn plan_sync(
    cluster: &ReadOnlyCluster,
    records: &ReadOnlyCluster,
    index: &KindIndex,
    app: &Application,
    manifests: &[Manifest],
    revision: Option<&str>,
    settings: &SyncSettings,
) -> StagedPlan {
    let started_at = Utc::now();
    let start = Instant::now();
    let before = cluster.counts();
    settings.progress.emit(|| ProgressEvent::Planning {
        app: app.name.clone(),
        objects: manifests.len(),
    });
    let previous = status::read(records, &settings.status_namespace, &app.name).await;
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
        cluster,
        index,
        app,
        manifests,
        revision,
        &previous_kinds,
        options,
    )
    .await;
    StagedPlan {
        plan,
        objects,
        kinds,
        previous,
        started_at,
        start,
        before,
        plan_ms: ms(start.elapsed()),
    }
}

/// Carries out a staged plan: stage by stage and wave by wave, then prune,
/// hooks, health and the status record (written to `records`).
#[allow(clippy::too_many_arguments)]
pub async fn apply_plan(
    cluster: &Cluster,
    records: &Cluster,
    index: &KindIndex,
    app: &Application,
    manifests: &[Manifest],
    staged: StagedPlan,
    revision: Option<&str>,
    settings: &SyncSettings,
) -> SyncResult {
    let StagedPlan {
        plan,
        objects,
        kinds,
        previous,
        started_at,
        start,
        before,
        plan_ms,
    } = staged;
    let progress = &settings.progress;

    let mut errors: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
    let mut notes = plan.notes.clone();
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
    // Hooks belong to a sync that writes: a run with nothing to do (every
    // periodic reconcile of a synced application) runs none, as Argo CD
    // syncs only what is out of sync.
    let mut hooks = HookRunner::new(cluster, app, settings, manifests);
    let run_hooks = any_write && !hooks.is_empty();
    if run_hooks
        && !stopped
        && let Err(message) = hooks.run(HookPhase::PreSync, None, index).await
    {
        errors.push(format!("{message}; nothing else was applied"));
        stopped = true;
        for e in entries
            .iter_mut()
            .filter(|e| matches!(e.outcome, Outcome::NotAttempted(_)))
        {
            e.outcome = Outcome::NotAttempted("a PreSync hook failed; nothing was applied".into());
        }
    }

    // Steps in order: (stage, wave) → entry indices (prunes excluded).
    let mut steps: BTreeMap<(u8, i64), Vec<usize>> = BTreeMap::new();
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.change.action != Action::Prune)
    {
        steps.entry(e.change.phase.step()).or_default().push(i);
    }
    if run_hooks {
        // A wave may hold Sync hooks alone.
        for wave in hooks.sync_waves() {
            steps.entry((3, wave)).or_default();
        }
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
        if run_hooks
            && !stopped
            && *stage == 3
            && let Err(message) = hooks.run(HookPhase::Sync, Some(*wave), &index).await
        {
            errors.push(format!(
                "{step_name}: {message}; later waves were not applied"
            ));
            stopped = true;
        }
    }
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

    // PostSync: once everything is applied and healthy.
    let any_failed = entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Failed(_)));
    if run_hooks && !stopped && !any_failed && hooks.has(HookPhase::PostSync) {
        let members: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].change.action != Action::Prune)
            .collect();
        let gate = Gate {
            app: &app.name,
            step: "PostSync",
        };
        let gate_start = Instant::now();
        let healthy = health_gate(cluster, &mut entries, &members, settings, gate).await;
        timings.health_ms += ms(gate_start.elapsed());
        let ran = match healthy {
            Ok(()) => hooks.run(HookPhase::PostSync, None, &index).await,
            Err(message) => Err(format!(
                "the application is not healthy after the last wave ({message}), so PostSync hooks were not run"
            )),
        };
        if let Err(message) = ran {
            errors.push(message);
            stopped = true;
        }
    }

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
    let run_failed = stopped || failed || !errors.is_empty();
    if run_hooks
        && run_failed
        && let Err(message) = hooks.run(HookPhase::SyncFail, None, &index).await
    {
        errors.push(message);
    }
    let hooks = if run_hooks {
        hooks.finish("the sync stopped before their phase")
    } else {
        if !hooks.is_empty() {
            notes.push("hooks not run: nothing to sync".into());
        }
        Vec::new()
    };
    let phase = if run_failed {
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
        hooks,
        errors,
        notes,
        requests: Default::default(),
        status_recorded: false,
        timings,
        health_since: Some(status::health_since(
            previous.as_ref().and_then(|p| p.result.as_ref()),
            health,
            Utc::now(),
        )),
    };
    if settings.record_status {
        let written = status::write(
            records,
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
