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
use super::hooks::{Hook, HookPhase};
use super::inventory::kind_id;
use super::live_plan::{LivePlan, PlanOptions, PlannedObject, plan_application};
use super::plan::{Action, Plan};
use super::result::{Effect, ObjectOutcome, RunPhase, SyncResult, Timings};
use super::settings::SyncSettings;
use super::status::{self, RunRecord, StoredStatus};
use super::write::write_entry;
use crate::cluster::client::{Cluster, ReadOnlyCluster, RequestCounts};
use crate::cluster::discovery::KindIndex;
use crate::cluster::health;
use crate::config::Application;
use crate::manifest::Manifest;
use crate::progress::ProgressEvent;
use crate::source::order::Stage;

mod prune;

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
    hooks: Vec<Hook>,
    previous: Option<StoredStatus>,
    /// Whether the status record could be read (`previous` is then the truth).
    status_read: bool,
    started_at: DateTime<Utc>,
    start: Instant,
    before: RequestCounts,
    plan_ms: u64,
}

impl StagedPlan {
    /// Whether the cluster surely holds no status record of the
    /// application (read and not found; a record that could not be read is
    /// not taken for none).
    pub fn never_synced(&self) -> bool {
        self.status_read && self.previous.is_none()
    }

    /// The run history of the status record read, newest first.
    pub fn recorded_runs(&self) -> Option<&[RunRecord]> {
        self.previous.as_ref().map(|p| p.runs.as_slice())
    }
}

/// Syncs one application: plan (every change server-validated), apply,
/// gate, prune, record. The manifests are copied for the plan, which takes
/// its own; the engine hands its over instead.
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
        manifests.to_vec(),
        revision,
        settings,
    )
    .await;
    apply_plan(cluster, cluster, index, app, staged, revision, settings).await
}

/// Plans one application against the live cluster: reads its last status
/// (for the inventory of kinds to look for prunes in) and server-validates
/// every change, never writing. The manifests become the plan's apply bodies.
/// `records` holds the status records (relbot's own cluster, which differs
/// from `cluster` for an application with a destination).
pub async fn plan_sync(
    cluster: &ReadOnlyCluster,
    records: &ReadOnlyCluster,
    index: &KindIndex,
    app: &Application,
    manifests: Vec<Manifest>,
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
    let read = status::read_record(records, &settings.status_namespace, &app.name).await;
    let status_read = read.is_ok();
    let previous = read.ok().flatten();
    let previous_kinds = previous
        .as_ref()
        .map(|p| p.kinds.clone())
        .unwrap_or_default();
    // Every change is server-validated before the first write: one rejected
    // object stops the run with nothing of it applied (never half a wave).
    let options = PlanOptions {
        validate: true,
        concurrency: settings.concurrency,
        health_rules: &settings.health_rules,
        installation: &settings.status_namespace,
    };
    let LivePlan {
        plan,
        objects,
        kinds,
        hooks,
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
        hooks,
        previous,
        status_read,
        started_at,
        start,
        before,
        plan_ms: ms(start.elapsed()),
    }
}

/// Carries out a staged plan: stage by stage and wave by wave, then (with
/// `wait_for_last_wave`) the health wait, prune, hooks, health and the
/// status record. The steps are [`SyncRun`]'s, which callers may also take
/// one by one. The status record is written to `records`.
pub async fn apply_plan(
    cluster: &Cluster,
    records: &Cluster,
    index: &KindIndex,
    app: &Application,
    staged: StagedPlan,
    revision: Option<&str>,
    settings: &SyncSettings,
) -> SyncResult {
    let mut run = SyncRun::start(cluster, records, index, app, staged, revision, settings);
    run.apply().await;
    if settings.wait_for_last_wave {
        run.wait(settings.health_timeout).await;
    }
    run.prune().await;
    run.finish().await
}

/// A sync under way: [`start`](Self::start) from a staged plan, then
/// [`apply`](Self::apply) its waves, [`wait`](Self::wait) for the last one
/// to become healthy, [`prune`](Self::prune) what git no longer has and
/// [`finish`](Self::finish) (PostSync hooks, health, the status record).
/// Each step does nothing once an earlier one stopped the run, and says so
/// in the objects' outcomes.
pub struct SyncRun {
    cluster: Cluster,
    /// Where the status record is written: relbot's own cluster.
    records: Cluster,
    app: Application,
    settings: SyncSettings,
    index: KindIndex,
    revision: Option<String>,
    entries: Vec<Entry>,
    errors: Vec<String>,
    notes: Vec<String>,
    kinds: BTreeSet<String>,
    previous: Option<StoredStatus>,
    hooks: HookRunner,
    run_hooks: bool,
    any_write: bool,
    stopped: bool,
    /// The members of the last step applied, for [`wait`](Self::wait).
    last_step: Option<(String, Vec<usize>)>,
    /// The last wave's Sync hooks: they run after its health wait (or
    /// before prune when the caller does not wait).
    pending_hooks: Option<(String, i64)>,
    /// Set by a caller that has watched this rollout long enough: a run
    /// that ends still Progressing fails with these words.
    progressing_fails: Option<String>,
    timings: Timings,
    started_at: DateTime<Utc>,
    start: Instant,
    before: RequestCounts,
}

impl SyncRun {
    /// Takes over a staged plan; nothing is written yet.
    pub fn start(
        cluster: &Cluster,
        records: &Cluster,
        index: &KindIndex,
        app: &Application,
        staged: StagedPlan,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> Self {
        let StagedPlan {
            plan,
            objects,
            kinds,
            hooks,
            previous,
            status_read: _,
            started_at,
            start,
            before,
            plan_ms,
        } = staged;
        let errors: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
        let stopped = !errors.is_empty();
        let mut entries: Vec<Entry> = plan
            .changes
            .into_iter()
            .zip(objects)
            .map(|(change, object)| {
                let outcome = if change.action == Action::Unchanged {
                    Effect::Unchanged
                } else if let Some(why) = &change.held {
                    Effect::Held(why.clone())
                } else {
                    Effect::NotAttempted(NOT_REACHED.into())
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
        if stopped {
            not_attempted(&mut entries, "the plan has errors; nothing was applied");
        }
        let any_write = entries.iter().any(|e| e.change.writes());
        let hooks = HookRunner::new(cluster.clone(), app.clone(), settings.clone(), hooks);
        // Hooks belong to a sync that writes: a run with nothing to do (every
        // periodic reconcile of a synced application) runs none, as Argo CD
        // syncs only what is out of sync.
        let run_hooks = any_write && !hooks.is_empty();
        SyncRun {
            cluster: cluster.clone(),
            records: records.clone(),
            app: app.clone(),
            settings: settings.clone(),
            index: index.clone(),
            revision: revision.map(str::to_string),
            entries,
            errors,
            notes: plan.notes,
            kinds,
            previous,
            hooks,
            run_hooks,
            any_write,
            stopped,
            last_step: None,
            pending_hooks: None,
            progressing_fails: None,
            timings: Timings {
                plan_ms,
                ..Default::default()
            },
            started_at,
            start,
            before,
        }
    }

    /// A rollout its caller has waited for long enough (serve, after
    /// `healthTimeout`): if [`finish`](Self::finish) still sees the
    /// application Progressing, the run fails with `why`, before the status
    /// record and the SyncFail hooks, as a wave that stays unhealthy does.
    pub fn fail_if_still_progressing(&mut self, why: String) {
        self.progressing_fails = Some(why);
    }

    /// Whether a step stopped the run (the later steps then do nothing).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// PreSync hooks, then every stage and wave in order, each gated on the
    /// health of the one before (the last wave's is [`wait`](Self::wait)).
    pub async fn apply(&mut self) {
        let apply_start = Instant::now();
        let mut health_time = Duration::ZERO;
        if self.run_hooks && !self.stopped && self.hooks.has(HookPhase::PreSync) {
            self.create_hook_namespaces().await;
        }
        if self.run_hooks
            && !self.stopped
            && let Err(message) = self.hooks.run(HookPhase::PreSync, None, &self.index).await
        {
            self.errors
                .push(format!("{message}; nothing else was applied"));
            self.stopped = true;
            not_attempted(
                &mut self.entries,
                "a PreSync hook failed; nothing was applied",
            );
        }
        let entries = &self.entries;

        // Steps in order: (stage, wave) → entry indices (prunes excluded).
        let mut steps: BTreeMap<(Stage, i64), Vec<usize>> = BTreeMap::new();
        for (i, e) in entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.change.action != Action::Prune)
        {
            steps.entry(e.change.order.step()).or_default().push(i);
        }
        if self.run_hooks {
            // A wave may hold Sync hooks alone.
            for wave in self.hooks.sync_waves() {
                steps.entry((Stage::Resources, wave)).or_default();
            }
        }
        // For progress: objects written of all this run writes (prunes aside).
        let total_writes = steps
            .values()
            .flatten()
            .filter(|&&i| entries[i].change.writes())
            .count();
        let mut written = 0;
        let step_count = steps.len();
        for (step, ((stage, wave), members)) in steps.into_iter().enumerate() {
            if self.stopped {
                break;
            }
            // Borrowed for this step only: its Sync hooks need the whole run.
            let (cluster, settings, app) = (&self.cluster, &self.settings, &self.app);
            let progress = &settings.progress;
            let entries = &mut self.entries;
            let step_name = match stage {
                Stage::Definitions | Stage::Classes => format!("stage {}", stage.number()),
                Stage::Resources => format!("wave {wave}"),
            };
            // Kinds from CRDs applied in stage 1 are served now.
            if stage != Stage::Definitions {
                resolve_pending(entries, &members, &self.index);
            }
            let to_write: Vec<usize> = members
                .iter()
                .copied()
                // A namespace a PreSync hook needed is written already.
                .filter(|&i| entries[i].change.writes() && entries[i].outcome != Effect::Applied)
                .collect();
            progress.emit(|| ProgressEvent::Wave {
                app: app.name.clone(),
                step: step + 1,
                steps: step_count,
                name: step_name.clone(),
                writes: to_write.len(),
                total: total_writes,
            });
            let write = |i: usize| {
                let e = &entries[i];
                async move { (i, write_entry(cluster, &e.change, &e.object).await) }
            };
            let mut count_written = || {
                written += 1;
                progress.emit(|| ProgressEvent::Applied {
                    app: app.name.clone(),
                    done: written,
                    total: total_writes,
                });
            };
            // What the dry-run could not vouch for goes first, one at a time:
            // a refusal stops the step before the rest of it is written.
            let (unvouched, vouched): (Vec<usize>, Vec<usize>) = to_write
                .into_iter()
                .partition(|&i| entries[i].object.allocates_on_write());
            let mut results: Vec<(usize, Result<Value, String>)> = Vec::new();
            for i in unvouched {
                let result = write(i).await;
                count_written();
                let refused = result.1.is_err();
                results.push(result);
                if refused {
                    break;
                }
            }
            let first_refused = results.iter().any(|(_, result)| result.is_err());
            if !first_refused {
                let rest: Vec<_> = stream::iter(vouched)
                    .map(write)
                    .buffer_unordered(settings.concurrency)
                    .inspect(|_| count_written())
                    .collect()
                    .await;
                results.extend(rest);
            }
            let mut failed = 0;
            for (i, result) in results {
                let e = &mut entries[i];
                match result {
                    Ok(after) => {
                        if e.change.action != Action::Create {
                            e.diff = object_diff(&e.change.key, e.object.live.as_ref(), &after);
                        }
                        e.outcome = Effect::Applied;
                        e.current = Latest::Seen(after);
                    }
                    Err(message) => {
                        failed += 1;
                        e.outcome = Effect::Failed(message);
                    }
                }
            }
            if failed > 0 {
                let rest = if first_refused {
                    "nothing else of it or later was applied"
                } else {
                    "later waves were not applied"
                };
                self.errors.push(format!(
                    "{step_name}: {failed} object(s) failed to apply; {rest}"
                ));
                self.stopped = true;
                break;
            }
            if stage == Stage::Definitions {
                let gate_start = Instant::now();
                match wait_for_crds(cluster, entries, &members, settings).await {
                    Ok(true) => match cluster.discover().await {
                        Ok(fresh) => self.index = fresh,
                        Err(e) => {
                            self.errors
                                .push(format!("rediscovery after applying CRDs failed: {e}"));
                            self.stopped = true;
                        }
                    },
                    Ok(false) => {}
                    Err(message) => {
                        self.errors.push(message);
                        self.stopped = true;
                    }
                }
                health_time += gate_start.elapsed();
            }
            let last_step = step + 1 == step_count;
            if self.any_write && !self.stopped && !last_step {
                let gate_start = Instant::now();
                let gate = Gate {
                    app: &app.name,
                    step: &step_name,
                };
                if let Err(message) = health_gate(cluster, entries, &members, settings, gate).await
                {
                    self.errors.push(format!(
                        "{step_name}: {message}; later waves were not applied"
                    ));
                    self.stopped = true;
                }
                health_time += gate_start.elapsed();
            }
            if last_step {
                // Its Sync hooks run after the wait, when there is one.
                if stage == Stage::Resources {
                    self.pending_hooks = Some((step_name.clone(), wave));
                }
                self.last_step = Some((step_name, members));
            } else if stage == Stage::Resources {
                self.run_sync_hooks(&step_name, wave).await;
            }
        }
        self.timings.health_ms += ms(health_time);
        self.timings.apply_ms = ms(apply_start.elapsed().saturating_sub(health_time));
    }

    /// Creates the namespaces this plan creates that PreSync hooks run in,
    /// before those hooks: they come before the first stage, which would
    /// otherwise create them. (Argo CD creates only its `CreateNamespace`
    /// namespace this early; a hook in a namespace from git fails there.)
    async fn create_hook_namespaces(&mut self) {
        let needed = self.hooks.namespaces(HookPhase::PreSync);
        let ahead: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                let change = &self.entries[i].change;
                change.action == Action::Create
                    && change.key.group.is_empty()
                    && change.key.kind == "Namespace"
                    && needed.contains(&change.key.name)
            })
            .collect();
        for i in ahead {
            let e = &mut self.entries[i];
            match write_entry(&self.cluster, &e.change, &e.object).await {
                Ok(after) => {
                    e.outcome = Effect::Applied;
                    e.current = Latest::Seen(after);
                }
                Err(message) => {
                    self.errors.push(format!(
                        "the namespace {} of a PreSync hook could not be created; nothing else was applied",
                        e.change.key.name
                    ));
                    e.outcome = Effect::Failed(message);
                    self.stopped = true;
                    return;
                }
            }
        }
    }

    /// Waits up to `timeout` for the last wave applied to become healthy
    /// (`relbot sync --wait`; serve always waits). A wave that does not
    /// stops the run: nothing is pruned and PostSync hooks do not run. A
    /// run that wrote nothing has nothing to wait for.
    pub async fn wait(&mut self, timeout: Duration) {
        self.wait_for_last_step(timeout).await;
        self.run_pending_hooks().await;
    }

    async fn wait_for_last_step(&mut self, timeout: Duration) {
        let Some((step_name, members)) = self.last_step.take() else {
            return;
        };
        if !self.any_write || self.stopped {
            return;
        }
        let gate_start = Instant::now();
        let settings = SyncSettings {
            health_timeout: timeout,
            ..self.settings.clone()
        };
        let gate = Gate {
            app: &self.app.name,
            step: &step_name,
        };
        if let Err(message) =
            health_gate(&self.cluster, &mut self.entries, &members, &settings, gate).await
        {
            self.errors.push(format!(
                "{step_name}: {message}; later waves were not applied"
            ));
            self.stopped = true;
        }
        self.timings.health_ms += ms(gate_start.elapsed());
    }

    /// PostSync hooks (once everything is applied and healthy), every
    /// object's health from what was last seen, SyncFail hooks for a failed
    /// run, and the status record with the inventory after the run.
    pub async fn finish(mut self) -> SyncResult {
        self.run_pending_hooks().await;
        // Prunes of a run whose caller did not prune (objects no step
        // reached are said to be not attempted already).
        for e in self.entries.iter_mut().filter(|e| {
            e.change.action == Action::Prune
                && matches!(&e.outcome, Effect::NotAttempted(why) if why == NOT_REACHED)
        }) {
            e.outcome = Effect::NotAttempted("not pruned: this run did not prune".into());
        }
        let (cluster, app, settings) = (&self.cluster, &self.app, &self.settings);
        let entries = &mut self.entries;
        let any_failed = entries
            .iter()
            .any(|e| matches!(e.outcome, Effect::Failed(_)));
        if self.run_hooks && !self.stopped && !any_failed && self.hooks.has(HookPhase::PostSync) {
            let members: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].change.action != Action::Prune)
                .collect();
            let gate = Gate {
                app: &app.name,
                step: "PostSync",
            };
            let gate_start = Instant::now();
            let healthy = health_gate(cluster, entries, &members, settings, gate).await;
            self.timings.health_ms += ms(gate_start.elapsed());
            let ran = match healthy {
                Ok(()) => self.hooks.run(HookPhase::PostSync, None, &self.index).await,
                Err(message) => Err(format!(
                    "the application is not healthy after the last wave ({message}), so PostSync hooks were not run"
                )),
            };
            if let Err(message) = ran {
                self.errors.push(message);
                self.stopped = true;
            }
        }

        // Health of everything desired, from what we last saw.
        for e in entries
            .iter_mut()
            .filter(|e| e.change.action != Action::Prune)
        {
            if e.health.is_none() {
                e.health = Some(e.assess(&settings.health_rules));
            }
        }
        let health = health::worst(
            entries
                .iter()
                .filter_map(|e| e.health.as_ref().map(|h| &h.status)),
        );
        if health == health::HealthStatus::Progressing
            && let Some(why) = self.progressing_fails.take()
        {
            self.errors.push(why);
        }
        let held = entries.iter().any(|e| matches!(e.outcome, Effect::Held(_)));
        let failed = entries
            .iter()
            .any(|e| matches!(e.outcome, Effect::Failed(_)));
        let run_failed = self.stopped || failed || !self.errors.is_empty();
        if self.run_hooks
            && run_failed
            && let Err(message) = self.hooks.run(HookPhase::SyncFail, None, &self.index).await
        {
            self.errors.push(message);
        }
        let hooks = if self.run_hooks {
            self.hooks.finish("the sync stopped before their phase")
        } else {
            if !self.hooks.is_empty() {
                self.notes.push("hooks not run: nothing to sync".into());
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
        let mut inventory: BTreeSet<String> = std::mem::take(&mut self.kinds);
        for e in entries
            .iter()
            .filter(|e| e.change.action == Action::Prune && e.outcome != Effect::Applied)
        {
            inventory.insert(kind_id(&e.object.kind));
        }
        let inventory: Vec<String> = inventory.into_iter().collect();

        let objects = std::mem::take(entries)
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
            revision: self.revision.clone(),
            server: cluster.server().to_string(),
            started_at: self.started_at,
            phase,
            health,
            objects,
            hooks,
            errors: self.errors,
            notes: self.notes,
            requests: Default::default(),
            status_recorded: false,
            timings: self.timings,
            health_since: Some(status::health_since(
                self.previous.as_ref().and_then(|p| p.result.as_ref()),
                health,
                Utc::now(),
            )),
        };
        if settings.record_status {
            let written = status::write(
                &self.records,
                &settings.status_namespace,
                &result,
                &inventory,
                self.previous.as_ref(),
                &settings.trigger,
            )
            .await;
            match written {
                Ok(written) => result.status_recorded = written,
                Err(e) => result.notes.push(e.to_string()),
            }
        }
        result.timings.total_ms = ms(self.start.elapsed());
        result.requests = cluster.counts().since(&self.before);
        settings.progress.emit(|| ProgressEvent::AppFinished {
            app: app.name.clone(),
        });
        result
    }
}

impl SyncRun {
    /// The last wave's Sync hooks, once.
    async fn run_pending_hooks(&mut self) {
        if let Some((step_name, wave)) = self.pending_hooks.take() {
            self.run_sync_hooks(&step_name, wave).await;
        }
    }

    /// A wave's Sync hooks, after the wave is applied (and healthy); one
    /// that fails stops the run.
    async fn run_sync_hooks(&mut self, step_name: &str, wave: i64) {
        if self.run_hooks
            && !self.stopped
            && let Err(message) = self
                .hooks
                .run(HookPhase::Sync, Some(wave), &self.index)
                .await
        {
            self.errors.push(format!(
                "{step_name}: {message}; later waves were not applied"
            ));
            self.stopped = true;
        }
    }
}

/// Why an object no step reached was not written.
const NOT_REACHED: &str = "the run stopped before reaching it";

/// Marks every entry no step has reached as not attempted, for `why`.
fn not_attempted(entries: &mut [Entry], why: &str) {
    for e in entries
        .iter_mut()
        .filter(|e| matches!(e.outcome, Effect::NotAttempted(_)))
    {
        e.outcome = Effect::NotAttempted(why.into());
    }
}
