//! The executor behind the update queue: fetch the repository, render each
//! application, sync it into the cluster and publish the result (status
//! page, metrics, commit statuses); bump runs go to [`super::bump`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{StreamExt, stream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::announce::Announcer;
use super::bump;
use super::http::AppState;
use super::page::links::RepoLinks;
use super::queue::{Executor, RunContext, RunError};
use super::rollout_watch::RolloutWatch;
use super::shard::mailbox::Address;
use super::shard::route::Sharding;
use super::status_page::AppStatus;
use super::trigger::{PolicySelector, PrSelector, Selector, SyncRequest, Trigger};
use crate::cluster::client::Cluster;
use crate::cluster::destination::Destinations;
use crate::cluster::discovery::KindIndex;
use crate::config::LoadedConfig;
use crate::redact::redact_userinfo;
use crate::release::bump::PolicyOutcome;
use crate::source::DesiredApplication;
use crate::source::git::{Checkout, GitCredentials, GitSource};
use crate::sync::change_set::Detail;
use crate::sync::engine::ResourceManager;
use crate::sync::fleet::{Fleet, Route};
use crate::sync::plan::{Action, Reason};
use crate::sync::result::{Effect, RunPhase, SyncResult};
use crate::sync::settings::{RunSettings, SyncSettings};

/// Readiness conditions: the first successful fetch, then discovery.
pub const READY_FETCH: &str = "fetch";
pub const READY_DISCOVERY: &str = "discovery";

/// Why the configured repository cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: no `repo:` section; relbot serve needs the repository to follow")]
    NoRepository { path: PathBuf },
    #[error("{0}")]
    Git(#[from] crate::source::git::GitError),
}

/// The repository of `repo:`, cached in `cache_dir`.
pub fn git_source(config: &LoadedConfig, cache_dir: &Path) -> Result<GitSource, SourceError> {
    let repo = config
        .config
        .repo
        .as_ref()
        .ok_or_else(|| SourceError::NoRepository {
            path: config.path.clone(),
        })?;
    Ok(GitSource::new(
        cache_dir.to_path_buf(),
        repo,
        GitCredentials::from_env(),
    )?)
}

/// The executor behind the guard: fetch → render → reconcile → publish.
pub struct Reconciler {
    config: watch::Receiver<Arc<LoadedConfig>>,
    cache_dir: PathBuf,
    cluster: Cluster,
    /// Clients of the other clusters applications name, kept across runs.
    destinations: Destinations,
    registries: bump::RegistryCache,
    /// Tags the last bump runs found, to tell webhooks with news.
    seen_tags: bump::SeenTags,
    /// Events and notifications about each application's runs.
    announce: Announcer,
    /// Set when sharded: which applications this replica may sync.
    sharding: Option<Sharding>,
    /// Applications the last runs left rolling out.
    rollouts: RolloutWatch,
    /// Commit statuses already posted, so a poll posts only news.
    statuses_posted: Arc<super::commit_status::Posted>,
    /// The queue is built before the HTTP state that holds it, so the
    /// executor receives the state a moment after it starts.
    state: Arc<OnceLock<AppState>>,
}

impl Reconciler {
    /// `state` is filled in once the HTTP state holding the queue exists;
    /// `identity` is this replica's name (its Events carry it).
    pub fn new(
        config: watch::Receiver<Arc<LoadedConfig>>,
        cache_dir: PathBuf,
        cluster: Cluster,
        state: Arc<OnceLock<AppState>>,
        identity: &str,
    ) -> Self {
        Reconciler {
            config,
            cache_dir,
            announce: Announcer::new(cluster.clone(), identity),
            destinations: Destinations::new(cluster.read_only().clone()),
            cluster,
            registries: bump::RegistryCache::default(),
            seen_tags: bump::SeenTags::default(),
            sharding: None,
            rollouts: RolloutWatch::default(),
            statuses_posted: Default::default(),
            state,
        }
    }

    /// Sharded: syncs only the applications of shards held here, and runs
    /// bumps only while holding the `relbot` Lease (else forwards them).
    pub fn with_sharding(mut self, sharding: Sharding) -> Self {
        self.sharding = Some(sharding);
        self
    }

    fn state(&self) -> Result<&AppState, RunError> {
        self.state
            .get()
            .ok_or_else(|| RunError::new("the server is still starting"))
    }

    async fn fetch(&self, config: &LoadedConfig) -> Result<(GitSource, Checkout), RunError> {
        let source = git_source(config, &self.cache_dir).map_err(RunError::new)?;
        let fetching = source.clone();
        let checkout = tokio::task::spawn_blocking(move || fetching.sync())
            .await
            .map_err(|e| RunError::new(format!("the fetch task failed: {e}")))?
            .map_err(RunError::new)?;
        self.state()?.readiness().mark(READY_FETCH);
        Ok((source, checkout))
    }

    fn publish(
        &self,
        state: &AppState,
        config: &LoadedConfig,
        source: &GitSource,
        checkout: &Checkout,
    ) {
        let configured: Vec<String> = config
            .config
            .applications
            .iter()
            .map(|a| a.name.clone())
            .collect();
        state.update_status(|s| {
            s.repository = Some(redact_userinfo(source.display_url()));
            s.branch = Some(checkout.branch.clone());
            s.revision = Some(checkout.revision.clone());
            // Applications removed from the configuration leave the page.
            s.apps.retain(|a| configured.contains(&a.name));
            for name in &configured {
                if !s.apps.iter().any(|a| &a.name == name) {
                    s.apps.push(AppStatus {
                        name: name.clone(),
                        sync: "Unknown".into(),
                        health: "Unknown".into(),
                        ..AppStatus::default()
                    });
                }
            }
            s.apps.sort_by(|a, b| a.name.cmp(&b.name));
        });
        state.pages().retain(&configured);
        state
            .pages()
            .set_links(RepoLinks::from_config(&config.config));
    }

    fn record(&self, state: &AppState, result: &SyncResult, trigger: &str) {
        state.pages().finished(result, trigger);
        let metrics = state.metrics();
        let app = result.application.as_str();
        let phase = phase_label(result.phase);
        metrics.syncs.inc(&[app, phase]);
        metrics
            .sync_duration
            .observe(&[app, phase], result.timings.total_ms as f64 / 1000.0);
        let mut drift = 0u64;
        let mut pruned = 0u64;
        let mut states: std::collections::BTreeMap<(&'static str, &'static str), u64> =
            Default::default();
        for object in &result.objects {
            let applied = object.outcome == Effect::Applied;
            if applied && object.reason == Reason::Drift {
                drift += 1;
            }
            if applied && object.action == Action::Prune {
                pruned += 1;
                continue;
            }
            let sync = match object.outcome {
                Effect::Applied | Effect::Unchanged => "Synced",
                _ => "OutOfSync",
            };
            let health = object
                .health
                .as_ref()
                .map(|h| h.status.as_str())
                .unwrap_or("Unknown");
            *states.entry((sync, health)).or_default() += 1;
        }
        metrics
            .objects
            .retain(|labels| labels.first().map(String::as_str) != Some(app));
        for ((sync, health), n) in states {
            metrics.objects.set(&[app, sync, health], n as f64);
        }
        if drift > 0 {
            metrics.drift_corrections.inc_by(&[app], drift as f64);
        }
        if pruned > 0 {
            metrics.prunes.inc_by(&[app], pruned as f64);
        }
        let message = if result.errors.is_empty() {
            result.counts().summary()
        } else {
            result.errors.join("; ")
        };
        state.update_status(|s| {
            let entry = match s.apps.iter_mut().position(|a| a.name == app) {
                Some(i) => &mut s.apps[i],
                None => {
                    s.apps.push(AppStatus {
                        name: app.to_string(),
                        ..AppStatus::default()
                    });
                    s.apps.last_mut().expect("just pushed")
                }
            };
            entry.revision = result.revision.clone();
            entry.sync = sync_word(result.phase).into();
            entry.health = result.health.as_str().into();
            entry.health_since = result.health_since;
            entry.unhealthy = super::observed::unhealthy_objects(result);
            entry.last_run = Some(result.started_at);
            entry.message = Some(message);
            s.apps.sort_by(|a, b| a.name.cmp(&b.name));
        });
    }

    async fn discover(&self, state: &AppState) -> Result<KindIndex, RunError> {
        // Every run: CRDs applied since the last one bring new kinds.
        let index = self.cluster.discover().await.map_err(RunError::new)?;
        state.readiness().mark(READY_DISCOVERY);
        Ok(index)
    }
}

fn phase_label(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Synced => "synced",
        RunPhase::OutOfSync => "out_of_sync",
        RunPhase::Failed => "failed",
    }
}

fn sync_word(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Synced => "Synced",
        RunPhase::OutOfSync => "OutOfSync",
        RunPhase::Failed => "Failed",
    }
}

/// How many applications one run syncs side by side. Most of a small
/// application's sync is waiting on the API server, so a few at once keep
/// a thousand of them well under a minute without crowding the server
/// (eight against four: 17.7 s against 18.5 s for a thousand, and a no-op
/// pass 4.7 s against 5.2 s; performance.md).
const SYNCS_AT_ONCE: usize = 8;

/// What every application of one run shares.
struct RunShared<'a> {
    state: &'a AppState,
    config: &'a LoadedConfig,
    revision: &'a str,
    settings: &'a RunSettings,
    fleet: &'a Fleet<'a>,
    statuses: Option<&'a super::commit_status::CommitStatuses>,
    context: &'a RunContext,
}

/// How one application's part of a run ended.
enum Finished {
    Synced {
        result: Box<SyncResult>,
        /// When to look at it again: it is still rolling out.
        look_again: Option<Duration>,
    },
    /// Only a read-only manager stops at the plan.
    PlannedOnly(String),
    /// Its shard is held by another replica now.
    Elsewhere(String),
    /// Leadership or the process ended before it started.
    Stopped(String),
}

/// What a run keeps of each application's end: names and errors. The
/// results themselves are recorded (pages, status, announcements) as each
/// application finishes.
#[derive(Default)]
struct RunTally {
    errors: Vec<String>,
    degraded: Vec<String>,
    elsewhere: Vec<String>,
    rolling_out: Vec<(String, Duration)>,
    stopped: Vec<String>,
}

impl RunTally {
    fn add(mut self, finished: Finished) -> Self {
        match finished {
            Finished::Synced { result, look_again } => {
                if result.health == crate::cluster::health::HealthStatus::Degraded {
                    self.degraded.push(result.application.clone());
                }
                if let Some(gap) = look_again {
                    self.rolling_out.push((result.application.clone(), gap));
                }
                if result.phase == RunPhase::Failed {
                    self.errors.push(format!(
                        "{}: {}",
                        result.application,
                        result.errors.join("; ")
                    ));
                }
            }
            Finished::PlannedOnly(name) => {
                self.errors.push(format!("{name}: planned but not synced"));
            }
            Finished::Elsewhere(name) => self.elsewhere.push(name),
            Finished::Stopped(name) => self.stopped.push(name),
        }
        self
    }
}

impl Reconciler {
    /// One application: plan, apply, prune, record, announce.
    async fn sync_application(
        &self,
        run: &RunShared<'_>,
        wanted: DesiredApplication,
        route: Route,
    ) -> Finished {
        let state = run.state;
        let name = wanted.app.name.clone();
        // Sharded: only while this replica holds the application's shard,
        // kept until the application's sync is over.
        let hold = match &self.sharding {
            None => None,
            Some(sharding) => match sharding.set.hold(&name) {
                Some(hold) => Some(hold),
                None => return Finished::Elsewhere(name),
            },
        };
        // A safe point: between applications, never inside one.
        if run.context.cancel.is_cancelled() {
            return Finished::Stopped(name);
        }
        let mut sync_settings = SyncSettings::new(&wanted.app, run.settings);
        sync_settings.trigger = run.context.reasons.join(", ");
        if let (Some(sharding), Some(hold)) = (&self.sharding, &hold) {
            // The history says who synced: one replica per shard at a time.
            sync_settings.trigger = format!(
                "{} shard {}: {}",
                sharding.set.identity(),
                hold.shard,
                sync_settings.trigger
            );
        }
        state.pages().started(&name, Some(run.revision));
        let new_revision = self.announce.is_new_revision(&name, run.revision);
        self.announce
            .started(run.config, &name, run.revision, &sync_settings.trigger)
            .await;
        if let Some(statuses) = run.statuses
            && new_revision
        {
            statuses.started(state.metrics(), &name, run.revision).await;
        }
        let revision = Some(run.revision);
        let changes = match run.fleet.manager(&route) {
            Ok(engine) => {
                let staged = engine.plan(wanted, revision, &sync_settings).await;
                // The page's history after a restart: from the status record
                // the plan read anyway.
                if !state.pages().knows(&name)
                    && let Some(runs) = staged.recorded_runs()
                {
                    state.pages().seed_runs(&name, runs);
                }
                // No wait on the last wave: a rollout is looked at again by
                // a later run (see `rollout_watch`).
                let mut execution = engine.apply(staged, &sync_settings).await;
                if let Some(why) =
                    self.rollouts
                        .overdue(&name, run.revision, sync_settings.health_timeout)
                {
                    execution.fail_if_still_progressing(why);
                }
                engine.prune(&mut execution).await;
                engine.finish(execution).await
            }
            Err(error) => {
                if !state.pages().knows(&name)
                    && let Some(stored) = crate::sync::status::read(
                        self.cluster.read_only(),
                        &sync_settings.status_namespace,
                        &name,
                    )
                    .await
                {
                    state.pages().seed_runs(&name, &stored.runs);
                }
                run.fleet
                    .refused(wanted, revision, &sync_settings, &error)
                    .await
            }
        };
        let result = match changes.detail {
            Detail::Result(result) => *result,
            Detail::Plan(_) => return Finished::PlannedOnly(name),
        };
        let look_again = self.rollouts.after_sync(&result);
        tracing::info!(
            application = %result.application,
            revision = %run.revision,
            phase = phase_label(result.phase),
            health = result.health.as_str(),
            summary = %result.counts().summary(),
            "synced"
        );
        self.record(state, &result, &sync_settings.trigger);
        self.announce
            .finished(run.config, state.metrics(), &result)
            .await;
        if let Some(statuses) = run.statuses {
            statuses.finished(state.metrics(), &result).await;
        }
        drop(hold);
        Finished::Synced {
            result: Box::new(result),
            look_again,
        }
    }
}

impl Executor for Reconciler {
    async fn sync(&self, request: &SyncRequest, run: &RunContext) -> Result<(), RunError> {
        let state = self.state()?;
        let config = self.config.borrow().clone();
        let (source, checkout) = self.fetch(&config).await?;
        self.publish(state, &config, &source, &checkout);
        if let Some(asked) = &request.revision
            && !checkout.revision.starts_with(asked.as_str())
        {
            // The branch head wins: it contains the asked-for commit or
            // replaced it (a force push); either way head is what git says now.
            tracing::debug!(asked = %asked, head = %checkout.revision, "syncing the branch head");
        }
        let root = checkout.path.clone();
        let rendering = config.config.clone();
        let rendered =
            tokio::task::spawn_blocking(move || crate::source::load_desired(&root, &rendering))
                .await
                .map_err(|e| RunError::new(format!("the render task failed: {e}")))?
                .map_err(|e| {
                    RunError::new(format!(
                        "cannot render revision {}: {e}",
                        &checkout.revision[..checkout.revision.len().min(12)]
                    ))
                })?;
        let index = self.discover(state).await?;
        // The engine the CLI syncs through, on this run's discovered kinds.
        let engine = ResourceManager::with_index(self.cluster.clone(), index);
        // Applications with a destination sync through its own manager;
        // records, Events and Leases stay here.
        let mut fleet = Fleet::writable(&engine, self.cluster.clone(), &self.destinations);
        let settings = RunSettings::from_config(&config.config);
        let statuses = match super::commit_status::CommitStatuses::from_config(
            &config,
            &self.statuses_posted,
        ) {
            Some(Ok(statuses)) => Some(statuses),
            Some(Err(e)) => {
                state.metrics().commit_statuses.inc(&["failed"]);
                tracing::warn!(
                    "github.commitStatuses is on but no GitHub client: {e}; syncing without statuses"
                );
                None
            }
            None => None,
        };
        // Destinations are opened once a run, before applications sync
        // side by side.
        let mut jobs = Vec::new();
        for desired in rendered {
            if !request.apps.contains(&desired.app.name) {
                continue;
            }
            let route = fleet
                .route(&desired.app, &SyncSettings::new(&desired.app, &settings))
                .await;
            jobs.push((desired, route));
        }
        let shared = RunShared {
            state,
            config: &config,
            revision: &checkout.revision,
            settings: &settings,
            fleet: &fleet,
            statuses: statuses.as_ref(),
            context: run,
        };
        // Each application's future is made when its turn comes, and its
        // result is folded into the tally as it ends: a thousand of either,
        // held for the whole run, were most of serve's memory.
        let RunTally {
            errors,
            degraded,
            elsewhere,
            rolling_out,
            stopped,
        } = stream::iter(jobs)
            .map(|(wanted, route)| self.sync_application(&shared, wanted, route))
            .buffered(SYNCS_AT_ONCE)
            .fold(RunTally::default(), |tally, finished| async move {
                tally.add(finished)
            })
            .await;
        if !stopped.is_empty() {
            return Err(RunError::new(format!(
                "stopped before {} (shutdown or leadership lost)",
                stopped.join(", ")
            )));
        }
        // Named applications whose shard moved away since the trigger was
        // routed: their new holder syncs them (a full sync needs no
        // forwarding, every replica polls its own shards).
        if let (Some(sharding), false) = (&self.sharding, request.apps.is_all()) {
            sharding.forward_sync(elsewhere, request.revision.clone(), &run.reasons.join(", "));
        }
        look_again(state, rolling_out, &run.cancel);
        // A Degraded application may owe its state to a merged bump: its
        // policies' next bump run asks the rollback rule (a healthy
        // application costs nothing here).
        let watched = rollback_policies(&config, &degraded);
        if !watched.is_empty() {
            state.queue().submit(Trigger::bump(
                Selector::only(watched),
                format!("rollback check: {} Degraded", degraded.join(", ")),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RunError::new(errors.join(" | ")))
        }
    }

    async fn bump(&self, policies: &PolicySelector, run: &RunContext) -> Result<(), RunError> {
        let state = self.state()?;
        let config = self.config.borrow().clone();
        if run.cancel.is_cancelled() {
            return Err(RunError::new("bump skipped: shutdown or leadership lost"));
        }
        // Sharded: the release bot runs on the `relbot` Lease holder only.
        if let Some(sharding) = &self.sharding
            && !sharding.is_leader()
        {
            sharding.forward(
                Address::Leader,
                Trigger::bump(policies.clone(), run.reasons.join(", ")),
            );
            return Ok(());
        }
        let only: Vec<String> = match policies {
            Selector::All => Vec::new(),
            Selector::Only(names) => names
                .iter()
                .filter(|n| {
                    config
                        .policies
                        .iter()
                        .any(|p| &p.policy.metadata.name == *n)
                })
                .cloned()
                .collect(),
        };
        if config.policies.is_empty() || (!policies.is_all() && only.is_empty()) {
            return Ok(());
        }
        let report = bump::run(&config, &self.cache_dir, state, &self.registries, &only)
            .await
            .map_err(RunError::new)?;
        bump::record_bumps(state, &report);
        self.seen_tags.record(&report);
        bump::follow_up_bumps(state, &report, &run.cancel);
        let failed: Vec<String> = report
            .policies
            .iter()
            .filter_map(|p| match &p.outcome {
                PolicyOutcome::Failed { error } => Some(format!("{}: {error}", p.policy)),
                _ => None,
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(RunError::new(failed.join(" | ")))
        }
    }

    /// Checks or reviews moved on a bump PR: a bump run re-requests the
    /// merge of every open bump PR (and changes nothing else when the
    /// registry has nothing newer).
    async fn continue_merge(&self, prs: &PrSelector, run: &RunContext) -> Result<(), RunError> {
        tracing::debug!(%prs, "continuing merges through a bump run");
        if let Some(sharding) = &self.sharding
            && !sharding.is_leader()
        {
            sharding.forward(
                Address::Leader,
                Trigger::ContinueMerge {
                    prs: prs.clone(),
                    reason: run.reasons.join(", "),
                },
            );
            return Ok(());
        }
        self.bump(&Selector::All, run).await
    }

    fn has_seen(&self, policy: &str, tag: &str) -> bool {
        self.seen_tags.contains(policy, tag)
    }
}

/// The policies of `applications` whose rollback is on.
/// Syncs the applications left rolling out again once the soonest of
/// their gaps has passed (one trigger: the queue coalesces it with any
/// other), unless leadership or the process ends first.
fn look_again(state: &AppState, rolling_out: Vec<(String, Duration)>, stop: &CancellationToken) {
    let Some(gap) = rolling_out.iter().map(|(_, gap)| *gap).min() else {
        return;
    };
    let names: Vec<String> = rolling_out.into_iter().map(|(app, _)| app).collect();
    let reason = match names.as_slice() {
        [one] => format!("{one} is rolling out"),
        many => format!("{} applications are rolling out", many.len()),
    };
    let (queue, stop) = (state.queue().clone(), stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(gap) => {
                queue.submit(Trigger::Sync {
                    apps: Selector::only(names),
                    revision: None,
                    reason,
                });
            }
        }
    });
}

fn rollback_policies(config: &LoadedConfig, applications: &[String]) -> Vec<String> {
    config
        .policies
        .iter()
        .map(|p| &p.policy)
        .filter(|p| p.spec.rollback.enabled)
        .filter(|p| {
            p.spec
                .application
                .as_ref()
                .is_some_and(|app| applications.contains(app))
        })
        .map(|p| p.metadata.name.clone())
        .collect()
}
