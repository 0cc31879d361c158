//! `relbot serve` wired end to end: the configuration (reloaded on change),
//! the git source, the cluster, the Lease, the update queue with the
//! reconciler behind it, the schedules and the HTTP server — and the drain on
//! SIGTERM.
//!
//! The configuration file is local (`--config`, usually a mounted ConfigMap);
//! the manifests come from the repository it names (`repo.url`), fetched into
//! a cache directory. Application paths are relative to the repository root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::guard::{Executor, LeaderState, RunContext, RunError, RunSummary, UpdateQueue};
use super::http::{self, AppState, HttpSettings, Readiness};
use super::lease::{ElectorHandle, LeaseElector, LeaseSettings};
use super::metrics::Metrics;
use super::page::links::RepoLinks;
use super::reload;
use super::schedule::{self, PolicySchedule};
use super::shard::mailbox::Address;
use super::shard::route::Sharding;
use super::shard::{ShardManager, ShardSet, ShardSettings};
use super::shutdown::{self, DrainOutcome};
use super::status_page::{AppStatus, PendingPr, StatusSnapshot};
use super::trigger::{PolicySelector, PrSelector, Selector, SyncRequest, Trigger};
use super::webhook::Routes;
use crate::cluster::client::{Cluster, ClusterTarget, locate};
use crate::cluster::discovery::KindIndex;
use crate::config::{Config, LoadedConfig};
use crate::redact::redact_userinfo;
use crate::release::bump::{BumpReport, MergeState, PolicyOutcome};
use crate::source::git::{Checkout, GitCredentials, GitSource};
use crate::sync::apply::sync_application;
use crate::sync::engine::SYNC_PROBE_TIMEOUT;
use crate::sync::plan::{Action, Reason};
use crate::sync::result::{Outcome, RunPhase, SyncResult};
use crate::sync::settings::{RunSettings, SyncSettings};

/// Readiness conditions: the first successful fetch, then discovery.
pub const READY_FETCH: &str = "fetch";
pub const READY_DISCOVERY: &str = "discovery";
/// The leader-election Lease answers (held here or by another replica).
pub const READY_LEASE: &str = "lease";
/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "relbot";
/// Cache directory for the repository (`RELBOT_CACHE_DIR`).
pub const CACHE_DIR_ENV: &str = "RELBOT_CACHE_DIR";

/// How `relbot serve` runs; built by the CLI.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config_path: PathBuf,
    pub cache_dir: PathBuf,
    pub cluster: ClusterTarget,
    /// Namespace of the Lease; None: the configuration's `status.namespace`.
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease (`POD_NAME`, else host name and pid).
    pub identity: String,
    pub drain_deadline: Duration,
    /// Split applications across replicas into this many shards
    /// (`--shards`); None: one replica, the Lease holder, syncs everything.
    pub shards: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Reload(#[from] reload::ReloadError),
    #[error("{0}")]
    Cluster(#[from] crate::cluster::client::ClusterError),
    #[error(
        "no cluster configured (no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account); relbot serve needs one to sync into"
    )]
    NoCluster,
    #[error("{path}: no `repo:` section; relbot serve needs the repository to follow")]
    NoRepository { path: PathBuf },
    #[error("{0}")]
    Git(#[from] crate::source::git::GitError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read a webhook secret: {0}")]
    Secret(std::io::Error),
}

/// The default cache directory: `$RELBOT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/relbot`, else `~/.cache/relbot`, else the temp dir.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("relbot");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("relbot");
    }
    std::env::temp_dir().join("relbot-cache")
}

/// `POD_NAME`, else `<hostname>-<pid>` (unique per process on one host).
pub fn default_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "relbot".into());
    format!("{host}-{}", std::process::id())
}

fn git_source(config: &LoadedConfig, cache_dir: &Path) -> Result<GitSource, ServeError> {
    let repo = config
        .config
        .repo
        .as_ref()
        .ok_or_else(|| ServeError::NoRepository {
            path: config.path.clone(),
        })?;
    Ok(GitSource::new(
        cache_dir.to_path_buf(),
        repo,
        GitCredentials::from_env(),
    )?)
}

fn routes_for(config: &LoadedConfig) -> Routes {
    // relbot.yaml sits at the repository root by convention.
    let file = config
        .path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("relbot.yaml"));
    Routes::from_config(&config.config, &config.policies, &file)
}

fn poll_interval(config: &Config) -> Duration {
    config
        .repo
        .as_ref()
        .map(|r| r.interval.0)
        .unwrap_or(Duration::from_secs(180))
        .max(Duration::from_secs(1))
}

fn cron_schedules(config: &LoadedConfig) -> Vec<PolicySchedule> {
    config
        .policies
        .iter()
        .filter_map(|p| {
            p.policy
                .spec
                .schedule
                .clone()
                .map(|s| (p.policy.metadata.name.clone(), s))
        })
        .collect()
}

/// The executor behind the guard: fetch → render → reconcile → publish.
pub struct Reconciler {
    config: watch::Receiver<Arc<LoadedConfig>>,
    cache_dir: PathBuf,
    cluster: Cluster,
    registries: bump::RegistryCache,
    /// Set when sharded: which applications this replica may sync.
    sharding: Option<Sharding>,
    /// The queue is built before the HTTP state that holds it, so the
    /// executor receives the state a moment after it starts.
    state: Arc<OnceLock<AppState>>,
}

impl Reconciler {
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
            let applied = object.outcome == Outcome::Applied;
            if applied && object.reason == Reason::Drift {
                drift += 1;
            }
            if applied && object.action == Action::Prune {
                pruned += 1;
                continue;
            }
            let sync = match object.outcome {
                Outcome::Applied | Outcome::Unchanged => "Synced",
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
        let settings = RunSettings::from_config(&config.config);
        let statuses = match super::commit_status::CommitStatuses::from_config(&config) {
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
        let mut errors = Vec::new();
        let mut degraded = Vec::new();
        let mut elsewhere = Vec::new();
        for desired in rendered {
            if !request.apps.contains(&desired.name) {
                continue;
            }
            // Sharded: only while this replica holds the application's
            // shard, kept until the application's sync is over.
            let hold = match &self.sharding {
                None => None,
                Some(sharding) => match sharding.set.hold(&desired.name) {
                    Some(hold) => Some(hold),
                    None => {
                        elsewhere.push(desired.name.clone());
                        continue;
                    }
                },
            };
            // A safe point: between applications, never inside one.
            if run.cancel.is_cancelled() {
                return Err(RunError::new(format!(
                    "stopped before {} (shutdown or leadership lost)",
                    desired.name
                )));
            }
            let Some(app) = config.application(&desired.name) else {
                continue;
            };
            let mut sync_settings = SyncSettings::new(app, &settings);
            sync_settings.trigger = run.reasons.join(", ");
            if let (Some(sharding), Some(hold)) = (&self.sharding, &hold) {
                // The history says who synced: one replica per shard at a time.
                sync_settings.trigger = format!(
                    "{} shard {}: {}",
                    sharding.set.identity(),
                    hold.shard,
                    sync_settings.trigger
                );
            }
            if !state.pages().knows(&app.name)
                && let Some(stored) = crate::sync::status::read(
                    self.cluster.read_only(),
                    &sync_settings.status_namespace,
                    &app.name,
                )
                .await
            {
                state.pages().seed_runs(&app.name, &stored.runs);
            }
            state.pages().started(&app.name, Some(&checkout.revision));
            if let Some(statuses) = &statuses {
                statuses
                    .started(state.metrics(), &app.name, &checkout.revision)
                    .await;
            }
            let result = sync_application(
                &self.cluster,
                &index,
                app,
                &desired.manifests,
                Some(&checkout.revision),
                &sync_settings,
            )
            .await;
            tracing::info!(
                application = %result.application,
                revision = %checkout.revision,
                phase = phase_label(result.phase),
                health = result.health.as_str(),
                summary = %result.counts().summary(),
                "synced"
            );
            self.record(state, &result, &sync_settings.trigger);
            if let Some(statuses) = &statuses {
                statuses.finished(state.metrics(), &result).await;
            }
            if result.health == crate::cluster::health::HealthStatus::Degraded {
                degraded.push(result.application.clone());
            }
            if result.phase == RunPhase::Failed {
                errors.push(format!(
                    "{}: {}",
                    result.application,
                    result.errors.join("; ")
                ));
            }
            drop(hold);
        }
        // Named applications whose shard moved away since the trigger was
        // routed: their new holder syncs them (a full sync needs no
        // forwarding, every replica polls its own shards).
        if let (Some(sharding), false) = (&self.sharding, request.apps.is_all()) {
            sharding.forward_sync(elsewhere, request.revision.clone(), &run.reasons.join(", "));
        }
        // A Degraded application may owe its state to a merged bump: its
        // policies' next bump run asks the rollback rule (a healthy
        // application costs nothing here).
        let watched = rollback_policies(&config, &degraded);
        if !watched.is_empty() {
            state.queue().submit(Trigger::Bump {
                policies: Selector::only(watched),
                reason: format!("rollback check: {} Degraded", degraded.join(", ")),
            });
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
                Trigger::Bump {
                    policies: policies.clone(),
                    reason: run.reasons.join(", "),
                },
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
        record_bumps(state, &report);
        follow_up_bumps(state, &report, &run.cancel);
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
}

/// The policies of `applications` whose rollback is on.
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

/// What a bump run leaves for later: a merged PR is a new commit to sync
/// now (not at the next poll), and a rollback waiting out its grace period
/// is asked again when the period ends.
fn follow_up_bumps(state: &AppState, report: &BumpReport, stop: &CancellationToken) {
    use crate::release::bump::RollbackDecision;
    if report
        .policies
        .iter()
        .any(|p| matches!(p.merge, Some(MergeState::Merged { .. })))
    {
        // Through the sharding router: every shard's holder syncs it.
        state.submit(Trigger::sync_all("a relbot pull request was merged"));
    }
    for line in &report.policies {
        let Some(RollbackDecision::Waiting { due, .. }) = &line.rollback else {
            continue;
        };
        // A second past the end, so the rule sees the period over.
        let wait = (*due - Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_add(Duration::from_secs(1));
        let (queue, policy, stop) = (state.queue().clone(), line.policy.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(wait) => {
                    queue.submit(Trigger::Bump {
                        policies: Selector::only([policy]),
                        reason: "rollback grace period over".into(),
                    });
                }
            }
        });
    }
}

/// Publishes a bump report: PR counters and the status page's pending PRs.
fn record_bumps(state: &AppState, report: &BumpReport) {
    let metrics = state.metrics();
    let mut pending = Vec::new();
    for line in &report.policies {
        let (number, url) = match &line.outcome {
            PolicyOutcome::Proposed { pr, url } => {
                metrics.pull_requests.inc(&["opened"]);
                (Some(*pr), url.clone())
            }
            PolicyOutcome::Updated { pr, url } => {
                metrics.pull_requests.inc(&["updated"]);
                (Some(*pr), url.clone())
            }
            PolicyOutcome::Unchanged { pr, url } => (Some(*pr), url.clone()),
            _ => (None, String::new()),
        };
        let merged = matches!(line.merge, Some(MergeState::Merged { .. }));
        if merged {
            metrics.pull_requests.inc(&["merged"]);
        }
        if let (Some(number), false) = (number, merged) {
            pending.push(PendingPr {
                policy: line.policy.clone(),
                number,
                title: line.title().unwrap_or_default(),
                url,
                state: line.merge.as_ref().map(super::page::views::merge_words),
            });
        }
    }
    let scanned: Vec<&str> = report.policies.iter().map(|p| p.policy.as_str()).collect();
    state.update_status(|s| {
        s.pending_prs
            .retain(|p| !scanned.contains(&p.policy.as_str()));
        s.pending_prs.extend(pending);
        s.pending_prs.sort_by(|a, b| a.policy.cmp(&b.policy));
    });
}

/// Registry counters of one bump run. The client counts across hosts, so
/// the label is the policies' one registry host, or `multiple`.
fn record_registry(
    state: &AppState,
    config: &LoadedConfig,
    stats: &crate::release::registry::StatsSnapshot,
) {
    let hosts: std::collections::BTreeSet<String> = config
        .policies
        .iter()
        .filter_map(|p| crate::release::registry::ImageRef::parse(&p.policy.spec.image).ok())
        .map(|image| image.registry)
        .collect();
    let label = match hosts.len() {
        1 => hosts.into_iter().next().unwrap_or_default(),
        _ => "multiple".to_string(),
    };
    let metrics = state.metrics();
    let limited = stats.rate_limit_waits.min(stats.requests);
    metrics
        .registry_requests
        .inc_by(&[&label, "ok"], (stats.requests - limited) as f64);
    if limited > 0 {
        metrics
            .registry_requests
            .inc_by(&[&label, "rate_limited"], limited as f64);
        metrics
            .registry_rate_limit_waits
            .inc_by(&[&label], stats.rate_limit_waits as f64);
    }
}

/// The bump engine as the server runs it: registry and GitHub clients from
/// the configuration and environment, the working clone in the cache, and
/// application health from the status page's last sync results.
mod bump {
    use super::*;
    use crate::release::bump::{
        AppHealth, AppObservation, BumpOptions, Publisher, StaticHealth, Workspace, run_bumps,
    };
    use crate::release::github::{GitHubClient, GithubSettings};
    use crate::release::registry::{
        RegistryClient, RegistryCredentials, RegistrySettings, StatsSnapshot,
    };

    /// The registry client, kept between bump runs: its bearer tokens, tag
    /// list ETags (a 304 costs nothing against Docker Hub's pull limit) and
    /// back-off state only help if they outlive one run. A new client is made
    /// when `registries:` or the credentials (a rotated Secret) change.
    #[derive(Default)]
    pub struct RegistryCache {
        slot: std::sync::Mutex<Option<Cached>>,
    }

    struct Cached {
        registries: Vec<crate::config::RegistryConfig>,
        credentials: RegistryCredentials,
        client: Arc<RegistryClient>,
        /// Stats already exported as metrics.
        reported: StatsSnapshot,
    }

    impl RegistryCache {
        pub fn client(&self, config: &LoadedConfig) -> Result<Arc<RegistryClient>, String> {
            let credentials = RegistryCredentials::from_environment().map_err(|e| e.to_string())?;
            let registries = &config.config.registries;
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = slot.as_ref()
                && &cached.registries == registries
                && cached.credentials == credentials
            {
                return Ok(cached.client.clone());
            }
            let client = Arc::new(
                RegistryClient::new(
                    RegistrySettings::from_config(registries),
                    credentials.clone(),
                )
                .map_err(|e| e.to_string())?,
            );
            *slot = Some(Cached {
                registries: registries.clone(),
                credentials,
                client: client.clone(),
                reported: StatsSnapshot::default(),
            });
            Ok(client)
        }

        /// Requests made since the last call (for counters that only grow).
        pub fn take_new_stats(&self, client: &Arc<RegistryClient>) -> StatsSnapshot {
            let now = client.stats().snapshot();
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_mut() {
                Some(cached) if Arc::ptr_eq(&cached.client, client) => {
                    let new = now.since(&cached.reported);
                    cached.reported = now;
                    new
                }
                // Replaced meanwhile: this client's stats were never reported.
                _ => now,
            }
        }
    }

    pub async fn run(
        config: &LoadedConfig,
        cache_dir: &Path,
        state: &AppState,
        registries: &RegistryCache,
        only: &[String],
    ) -> Result<BumpReport, String> {
        let registry = registries.client(config)?;
        let github_config = config
            .config
            .github
            .as_ref()
            .ok_or("relbot.yaml has no `github:` section; bump PRs need github.repository")?;
        let repo = config
            .config
            .repo
            .as_ref()
            .ok_or("relbot.yaml has no `repo:` section")?;
        let github = GitHubClient::new(
            GithubSettings::from_config(github_config, |name| std::env::var(name).ok())
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let base = github_config
            .base_branch
            .clone()
            .unwrap_or_else(|| repo.branch.clone());
        let workspace = Workspace::new(
            cache_dir.join("bump"),
            repo,
            &base,
            GitCredentials::from_env(),
        )
        .map_err(|e| e.to_string())?;
        let health = StaticHealth(
            state
                .status()
                .apps
                .iter()
                .map(|a| {
                    let observed = AppObservation {
                        health: AppHealth::parse(&a.health),
                        since: a.health_since,
                        revision: a.revision.clone(),
                        synced_at: a.last_run,
                        unhealthy: a.unhealthy.clone(),
                    };
                    (a.name.clone(), observed)
                })
                .collect(),
        );
        let publisher = Publisher {
            github: &github,
            workspace: &workspace,
            health: &health,
        };
        let options = BumpOptions {
            only: only.to_vec(),
            dry_run: false,
            ..Default::default()
        };
        let report = run_bumps(
            config,
            config.base_dir(),
            &registry,
            Some(&publisher),
            &options,
        )
        .await
        .map_err(|e| e.to_string());
        record_registry(state, config, &registries.take_new_stats(&registry));
        let report = report?;
        tracing::info!(
            policies = report.policies.len(),
            bumps = report.bumps().count(),
            github_requests = report.requests.github_requests,
            registry_requests = report.requests.registry_requests,
            "bump run finished"
        );
        Ok(report)
    }
}

/// What `GET /api/status` answers (and `relbot status --server` prints).
#[derive(Debug, Clone, Serialize)]
pub struct ApiStatus {
    pub ready: bool,
    pub leader: bool,
    pub running: bool,
    pub pending: bool,
    #[serde(flatten)]
    pub snapshot: StatusSnapshot,
    pub last_run: Option<ApiRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiRun {
    pub started: chrono::DateTime<Utc>,
    pub finished: chrono::DateTime<Utc>,
    pub reasons: Vec<String>,
    pub errors: Vec<(String, String)>,
    pub cancelled: bool,
}

impl From<RunSummary> for ApiRun {
    fn from(run: RunSummary) -> Self {
        ApiRun {
            started: run.started,
            finished: run.finished,
            reasons: run.reasons,
            errors: run.errors,
            cancelled: run.cancelled,
        }
    }
}

#[derive(Clone)]
struct ApiState {
    app: AppState,
    leader: LeaderState,
}

async fn api_status(State(state): State<ApiState>) -> axum::Json<ApiStatus> {
    let progress = state.app.queue().progress();
    axum::Json(ApiStatus {
        ready: state.app.readiness().is_ready(),
        leader: state.leader.is_leader(),
        running: progress.running,
        pending: progress.pending,
        snapshot: state.app.status(),
        last_run: state.app.queue().last_run().map(ApiRun::from),
    })
}

/// The service's routes plus `GET /api/status` (JSON for `relbot status --server`).
pub fn router(state: AppState, leader: LeaderState) -> Router {
    http::router(state.clone())
        .merge(super::page_routes::routes().with_state(state.clone()))
        .merge(
            Router::new()
                .route("/api/status", get(api_status))
                .with_state(ApiState { app: state, leader }),
        )
}

/// Runs `relbot serve` until SIGTERM/SIGINT (or `stop`), then drains.
pub async fn run(
    options: ServeOptions,
    settings: HttpSettings,
    stop: CancellationToken,
) -> Result<DrainOutcome, ServeError> {
    let metrics = Arc::new(Metrics::new());
    let initial = crate::config::load(&options.config_path)?;
    // Fail fast on a missing repo section or a bad URL.
    git_source(&initial, &options.cache_dir)?;
    let located = locate(&options.cluster)
        .await?
        .ok_or(ServeError::NoCluster)?;
    tracing::info!(cluster = %located.source, "using cluster");
    let cluster = Cluster::new(located.config.clone())?;

    let watch = reload::watch_config(initial, reload::DEFAULT_DEBOUNCE, metrics.clone())?;
    let config = watch.subscribe();
    let current = watch.current();

    // The Lease: one updater across replicas.
    let lease_namespace = options
        .lease_namespace
        .clone()
        .unwrap_or_else(|| current.config.status.namespace.clone());
    let kube_client = kube::Client::try_from(located.config).map_err(|source| {
        crate::cluster::client::ClusterError::Client {
            server: cluster.server().to_string(),
            source,
        }
    })?;
    let elector = Arc::new(LeaseElector::new(
        kube_client.clone(),
        LeaseSettings::new(&lease_namespace, LEASE_NAME, &options.identity),
        metrics.clone(),
    ));
    let leader = elector.leader_state();
    let mut lease_problem = elector.problem();
    let elector_handle: ElectorHandle = elector.spawn();

    let readiness = Arc::new(Readiness::new(
        [READY_FETCH, READY_DISCOVERY, READY_LEASE],
        metrics.clone(),
    ));
    // Ready only while the Lease answers: a replica that can never lead
    // (no namespace, no RBAC) must not look healthy.
    tokio::spawn({
        let readiness = readiness.clone();
        async move {
            loop {
                if lease_problem.borrow_and_update().is_none() {
                    readiness.mark(READY_LEASE);
                } else {
                    readiness.unmark(READY_LEASE);
                }
                if lease_problem.changed().await.is_err() {
                    return;
                }
            }
        }
    });
    // Sharded: every replica runs its queue; which applications it syncs
    // follows the shard Leases, and bumps stay with the leader.
    let shards = options.shards.map(|count| {
        let settings = ShardSettings::new(&lease_namespace, &options.identity, count);
        let set = Arc::new(ShardSet::new(
            settings.shards,
            &options.identity,
            settings.renew_deadline,
        ));
        let manager = Arc::new(ShardManager::new(
            kube_client.clone(),
            settings,
            set.clone(),
            leader.clone(),
        ));
        let sharding = Sharding::new(set, manager.mailbox().clone(), leader.clone());
        (manager, sharding)
    });
    let state_cell: Arc<OnceLock<AppState>> = Arc::default();
    let executor = Reconciler {
        sharding: shards.as_ref().map(|(_, s)| s.clone()),
        state: state_cell.clone(),
        config: config.clone(),
        cache_dir: options.cache_dir.clone(),
        cluster: cluster.clone(),
        registries: bump::RegistryCache::default(),
    };
    let queue_gate = if shards.is_some() {
        LeaderState::always()
    } else {
        leader.clone()
    };
    let queue = UpdateQueue::start(executor, queue_gate, metrics.clone());
    let state = AppState::new(
        queue.clone(),
        metrics.clone(),
        readiness.clone(),
        leader.clone(),
        routes_for(&current),
        settings,
    );
    let _ = state_cell.set(state.clone());
    let shard_handle = shards.map(|(manager, sharding)| {
        state.set_submit({
            let (sharding, queue) = (sharding.clone(), queue.clone());
            move |trigger| sharding.route(&queue, trigger)
        });
        let (queue, config) = (queue.clone(), config.clone());
        manager.spawn(move |gained, letters| {
            if !gained.is_empty() {
                let apps: std::collections::BTreeSet<String> = config
                    .borrow()
                    .config
                    .applications
                    .iter()
                    .map(|a| a.name.clone())
                    .filter(|name| gained.contains(&sharding.set.shard_of(name)))
                    .collect();
                let shards: Vec<String> = gained.iter().map(u32::to_string).collect();
                queue.submit(Trigger::Sync {
                    apps: Selector::Only(apps),
                    revision: None,
                    reason: format!("took shard {}", shards.join(", ")),
                });
            }
            for letter in letters {
                queue.submit(letter);
            }
        })
    });
    state
        .pages()
        .set_links(RepoLinks::from_config(&current.config));
    state.pages().set_leader_name({
        let elector = elector_handle.elector().clone();
        move || elector.holder()
    });

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(options.listen);
    tracing::info!(listen = %bound, identity = %options.identity, lease_namespace = %lease_namespace, shards = options.shards.unwrap_or(0), "relbot serve listening");

    shutdown::cancel_on_signal(stop.clone());
    let server = tokio::spawn(http::serve(
        listener,
        router(state.clone(), leader.clone()),
        stop.clone(),
    ));

    // Schedules follow config reloads.
    let (interval_tx, interval_rx) = watch::channel(poll_interval(&current.config));
    let (cron_tx, cron_rx) = watch::channel(cron_schedules(&current));
    tokio::spawn(schedule::run_poll(
        queue.clone(),
        interval_rx,
        schedule::DEFAULT_JITTER,
        stop.clone(),
    ));
    tokio::spawn(schedule::run_cron(
        queue.clone(),
        cron_rx,
        schedule::system_clock(),
        stop.clone(),
    ));
    tokio::spawn(follow_reloads(
        config.clone(),
        state.clone(),
        interval_tx,
        cron_tx,
        stop.clone(),
    ));

    // Readiness does not wait for leadership: a standby replica fetches and
    // discovers (both read-only) so it is ready to take over.
    tokio::spawn(warm_up(
        current.clone(),
        options.cache_dir.clone(),
        cluster.clone(),
        state.clone(),
        stop.clone(),
    ));
    queue.submit(Trigger::sync_all("startup"));

    stop.cancelled().await;
    // Stop accepting first; in-flight webhook requests finish.
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!("the HTTP server stopped with an error: {e}"),
        Err(_) => tracing::warn!("the HTTP server did not stop within 5 s"),
        _ => {}
    }
    let outcome = shutdown::drain(&queue, Some(elector_handle), options.drain_deadline).await;
    if let Some(handle) = shard_handle {
        handle.stop_and_release().await;
    }
    drop(watch);
    Ok(outcome)
}

/// Fetches and discovers once, outside the guard, so `/readyz` turns ready
/// on every replica; retries until it works or shutdown.
async fn warm_up(
    config: Arc<LoadedConfig>,
    cache_dir: PathBuf,
    cluster: Cluster,
    state: AppState,
    stop: CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let fetched = match git_source(&config, &cache_dir) {
            Ok(source) => tokio::task::spawn_blocking(move || source.sync())
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        match fetched {
            Ok(checkout) => {
                state.readiness().mark(READY_FETCH);
                tracing::info!(revision = %checkout.revision, elapsed_ms = started.elapsed().as_millis() as u64, "first fetch done");
            }
            Err(e) => tracing::warn!("first fetch failed: {e}; retrying"),
        }
        match cluster.ping(SYNC_PROBE_TIMEOUT).await {
            Ok(()) => match cluster.discover().await {
                Ok(_) => state.readiness().mark(READY_DISCOVERY),
                Err(e) => tracing::warn!("discovery failed: {e}; retrying"),
            },
            Err(e) => tracing::warn!("{e}; retrying"),
        }
        if state.readiness().is_ready() {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Applies each valid reload: webhook routes, poll interval, cron schedules,
/// and a full sync (applications or their settings may have changed).
async fn follow_reloads(
    mut config: watch::Receiver<Arc<LoadedConfig>>,
    state: AppState,
    interval: watch::Sender<Duration>,
    cron: watch::Sender<Vec<PolicySchedule>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = config.borrow_and_update().clone();
                state.set_routes(routes_for(&current));
                interval.send_replace(poll_interval(&current.config));
                cron.send_replace(cron_schedules(&current));
                tracing::info!(path = %current.path.display(), "configuration reloaded");
                state.queue().submit(Trigger::sync_all("configuration changed"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_the_pod_name_or_host_and_pid() {
        let identity = default_identity();
        assert!(!identity.is_empty());
        if std::env::var("POD_NAME")
            .map(|v| v.is_empty())
            .unwrap_or(true)
        {
            assert!(
                identity.ends_with(&format!("-{}", std::process::id())),
                "{identity}"
            );
        }
    }

    #[test]
    fn the_poll_interval_comes_from_the_repo_section() {
        let config: Config = serde_saphyr::from_str(
            "repo: { url: file:///tmp/x, interval: 7s }\napplications: []\n",
        )
        .unwrap();
        assert_eq!(poll_interval(&config), Duration::from_secs(7));
        let none: Config = serde_saphyr::from_str("applications: []\n").unwrap();
        assert_eq!(poll_interval(&none), Duration::from_secs(180));
    }

    fn loaded(yaml: &str) -> LoadedConfig {
        LoadedConfig {
            path: PathBuf::from("relbot.yaml"),
            config: serde_saphyr::from_str(yaml).expect("config"),
            policies: Vec::new(),
        }
    }

    #[test]
    fn bump_runs_share_one_registry_client_until_registries_change() {
        let cache = bump::RegistryCache::default();
        let plain = loaded("applications: []\n");
        let first = cache.client(&plain).expect("client");
        let second = cache.client(&plain).expect("client");
        assert!(
            Arc::ptr_eq(&first, &second),
            "tokens and ETags must outlive a run"
        );
        let mirrored = loaded(
            "applications: []\nregistries:\n  - host: docker.io\n    mirror: mirror.internal:5000\n",
        );
        let third = cache.client(&mirrored).expect("client");
        assert!(
            !Arc::ptr_eq(&second, &third),
            "new registries: settings need a new client"
        );
        // Stats are handed out once: counters exported as metrics only grow.
        assert_eq!(cache.take_new_stats(&third).requests, 0);
        assert_eq!(
            cache.take_new_stats(&first).requests,
            first.stats().snapshot().requests,
            "a replaced client's stats are reported whole"
        );
    }
}
