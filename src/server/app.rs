//! `relbot serve` wired end to end: the configuration (reloaded on change),
//! the git source, the cluster, the Lease, the update queue with the
//! reconciler behind it, the schedules and the HTTP server — and the drain on
//! SIGTERM.
//!
//! The configuration file is local (`--config`, usually a mounted ConfigMap);
//! the manifests come from the repository it names (`repo.url`), fetched into
//! a cache directory. Application paths are relative to the repository root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::api;
use super::http::{self, AppState, HttpSettings, Readiness};
use super::lease::{ElectorHandle, LeaseElector, LeaseSettings};
use super::metrics::Metrics;
use super::page::links::RepoLinks;
use super::queue::{LeaderState, UpdateQueue};
pub use super::reconciler::{READY_DISCOVERY, READY_FETCH};
use super::reconciler::{Reconciler, git_source};
use super::reload;
use super::schedule::{self, PolicySchedule};
use super::shard::route::Sharding;
use super::shard::{ShardManager, ShardSet, ShardSettings};
use super::shutdown::{self, DrainOutcome};
use super::trigger::{Selector, Trigger};
use super::webhook::Routes;
use crate::cluster::client::{Cluster, ClusterTarget, locate};
use crate::config::{Config, LoadedConfig};
use crate::sync::engine::SYNC_PROBE_TIMEOUT;

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
    #[error("{0}")]
    Source(#[from] super::reconciler::SourceError),
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

/// The service's routes plus `GET /api/status` (JSON for `relbot status --server`).
pub fn router(state: AppState, leader: LeaderState) -> Router {
    http::router(state.clone())
        .merge(super::page_routes::routes().with_state(state.clone()))
        .merge(api::routes(state, leader))
}

/// The shard count: `--shards` / `RELBOT_SHARDS` over `serve.shards` in
/// relbot.yaml (validated when the file loaded).
fn shard_count(flag: Option<u32>, config: &crate::config::LoadedConfig) -> Option<u32> {
    let file = config.config.serve.shards;
    if let (Some(flag), Some(file)) = (flag, file)
        && flag != file
    {
        tracing::info!(
            shards = flag,
            "--shards (or RELBOT_SHARDS) overrides serve.shards: {file} in {}",
            config.path.display()
        );
    }
    flag.or(file)
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
    let shard_count = shard_count(options.shards, &current);
    let shards = shard_count.map(|count| {
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
            metrics.clone(),
        ));
        let sharding = Sharding::new(set, manager.mailbox().clone(), leader.clone());
        (manager, sharding)
    });
    let state_cell: Arc<OnceLock<AppState>> = Arc::default();
    let mut executor = Reconciler::new(
        config.clone(),
        options.cache_dir.clone(),
        cluster.clone(),
        state_cell.clone(),
        &options.identity,
    );
    let queue_gate = match &shards {
        Some((_, sharding)) => {
            executor = executor.with_sharding(sharding.clone());
            LeaderState::always()
        }
        None => leader.clone(),
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
    tracing::info!(listen = %bound, identity = %options.identity, lease_namespace = %lease_namespace, shards = shard_count.unwrap_or(0), "relbot serve listening");

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

    #[test]
    fn the_flag_or_environment_overrides_serve_shards() {
        let loaded = |yaml: &str| crate::config::LoadedConfig {
            path: std::path::PathBuf::from("relbot.yaml"),
            config: serde_saphyr::from_str(yaml).unwrap(),
            policies: Vec::new(),
        };
        let file = loaded("applications: []\nserve: { shards: 4 }\n");
        assert_eq!(shard_count(None, &file), Some(4));
        assert_eq!(shard_count(Some(2), &file), Some(2));
        let plain = loaded("applications: []\n");
        assert_eq!(shard_count(None, &plain), None);
        assert_eq!(shard_count(Some(3), &plain), Some(3));
    }
}
