//! One run of the reconciler, shared by the CLI and the server:
//! desired applications (already rendered from a resolved source) →
//! plan → (apply → report), through one [`ResourceManager`] whose answer is
//! a [`ChangeSet`] for a dry-run and a sync alike. Callers fetch and
//! render; the engine never touches git.

use std::time::Duration;

use super::apply::{StagedPlan, SyncRun, plan_sync};
use super::change_set::ChangeSet;
use super::plan::{Plan, offline_plan};
use super::result::SyncResult;
use super::settings::{RunSettings, SyncSettings};
use super::status::RunRecord;
use crate::cluster::client::{Cluster, ClusterError, ClusterTarget, ReadOnlyCluster, locate};
use crate::cluster::discovery::KindIndex;
use crate::config::Application;
use crate::progress::ProgressEvent;
use crate::source::DesiredApplication;

/// How long a dry-run waits for a configured cluster before planning offline.
pub const DRY_RUN_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a real sync waits for the cluster to answer at all.
pub const SYNC_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// What a dry-run plans against.
#[derive(Debug, Clone)]
pub enum PlanTarget {
    /// Nothing reachable: plan everything as "would create".
    Offline {
        reason: String,
    },
    Live(ReadOnlyCluster),
}

/// For a dry-run: no cluster configured at all → offline at once; a cluster
/// configured but silent for [`DRY_RUN_PROBE_TIMEOUT`] → offline with a
/// notice naming it. A broken kubeconfig or a cluster that answers with an
/// error (bad credentials) is an error, not a reason to guess.
pub async fn open_for_plan(target: &ClusterTarget) -> Result<PlanTarget, EngineError> {
    let Some(located) = locate(target).await? else {
        return Ok(PlanTarget::Offline {
            reason: "no cluster configured: no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account"
                .into(),
        });
    };
    let cluster = ReadOnlyCluster::new(located.config)?;
    match cluster.ping(DRY_RUN_PROBE_TIMEOUT).await {
        Ok(()) => Ok(PlanTarget::Live(cluster)),
        Err(ClusterError::Unreachable { server, why }) => Ok(PlanTarget::Offline {
            reason: format!("the cluster at {server} from {} {why}", located.source),
        }),
        Err(other) => Err(other.into()),
    }
}

/// For a real sync: a cluster must be configured and answer.
pub async fn open_for_sync(target: &ClusterTarget) -> Result<Cluster, EngineError> {
    let located = locate(target).await?.ok_or(ClusterError::NotConfigured)?;
    let cluster = Cluster::new(located.config)?;
    cluster.ping(SYNC_PROBE_TIMEOUT).await?;
    Ok(cluster)
}

/// For a real sync, ready to plan: a cluster configured, answering, and
/// its kinds discovered. The probe and discovery go out together (discovery
/// is the first thing a sync needs, and waiting for the probe first costs a
/// round trip on every run); when the cluster is silent or refuses, the
/// probe's words are the error.
pub async fn connect_for_sync(target: &ClusterTarget) -> Result<ResourceManager, EngineError> {
    let located = locate(target).await?.ok_or(ClusterError::NotConfigured)?;
    let cluster = Cluster::new(located.config)?;
    let (probe, index) = tokio::join!(cluster.ping(SYNC_PROBE_TIMEOUT), cluster.discover());
    probe?;
    Ok(ResourceManager::with_index(cluster, index?))
}

/// Plans every application (a dry-run or a diff): never writes.
pub async fn plan_all(
    target: &PlanTarget,
    desired: Vec<DesiredApplication>,
    revision: Option<&str>,
    settings: &RunSettings,
) -> Result<Vec<Plan>, EngineError> {
    let manager = ResourceManager::read_only(target.clone()).await?;
    let changes = manager.run_all(desired, revision, settings).await;
    Ok(changes
        .into_iter()
        .filter_map(ChangeSet::into_plan)
        .collect())
}

/// Syncs every application, one after another, and records each result.
pub async fn sync_all(
    cluster: &Cluster,
    desired: Vec<DesiredApplication>,
    revision: Option<&str>,
    settings: &RunSettings,
) -> Result<Vec<SyncResult>, EngineError> {
    let manager = ResourceManager::writable(cluster.clone()).await?;
    let changes = manager.run_all(desired, revision, settings).await;
    Ok(changes
        .into_iter()
        .filter_map(ChangeSet::into_result)
        .collect())
}

/// The cluster a [`ResourceManager`] works on.
#[derive(Debug, Clone)]
enum Handle {
    /// Nothing reachable: every object "would create".
    Offline { reason: String },
    /// `sync --dry-run` and `diff`: reads and server-side dry-runs only.
    ReadOnly(ReadOnlyCluster),
    /// A sync.
    Writable(Cluster),
}

/// The engine's one entry point for the CLI and `relbot serve`, shaped like
/// Flux's `ssa.ResourceManager`: [`plan`](Self::plan) what git wants against
/// what the cluster has (every change server-validated), then carry the
/// plan out in steps the caller can see: [`apply`](Self::apply) the waves,
/// [`wait`](Self::wait) for the last one's health, [`prune`](Self::prune)
/// what git no longer has, [`finish`](Self::finish) with the hooks and the
/// status record. [`execute`](Self::execute) is those steps in that order
/// (waiting as the settings say). A read-only manager stops after the plan;
/// either way the answer is one [`ChangeSet`].
#[derive(Debug, Clone)]
pub struct ResourceManager {
    handle: Handle,
    /// Served kinds; empty offline.
    index: KindIndex,
    /// Where status records are read and written when that is not the
    /// cluster synced into (an application's destination): relbot's own.
    records: Option<Handle>,
}

/// A plan on its way to [`ResourceManager::execute`]: it owns the
/// application's desired objects (as the bodies to apply), so nothing is
/// held twice.
#[derive(Debug)]
pub struct Staged {
    app: Application,
    revision: Option<String>,
    planned: Planned,
}

#[derive(Debug)]
enum Planned {
    /// Planned without a cluster.
    Offline(Plan),
    /// Planned against the live cluster, with what applying it needs.
    Live(Box<StagedPlan>),
}

impl Staged {
    pub fn plan(&self) -> &Plan {
        match &self.planned {
            Planned::Offline(plan) => plan,
            Planned::Live(staged) => &staged.plan,
        }
    }

    /// The application planned.
    pub fn application(&self) -> &Application {
        &self.app
    }

    /// Whether the cluster holds no earlier result of the application: its
    /// first sync there (everything looks new). Unknown, so false, offline.
    /// Read from the status record the plan reads anyway, so saying it
    /// costs no request.
    pub fn never_synced(&self) -> bool {
        match &self.planned {
            Planned::Offline(_) => false,
            Planned::Live(staged) => staged.never_synced(),
        }
    }

    /// The run history of the status record the plan read (newest
    /// first); none offline or without a record.
    pub fn recorded_runs(&self) -> Option<&[RunRecord]> {
        match &self.planned {
            Planned::Offline(_) => None,
            Planned::Live(staged) => staged.recorded_runs(),
        }
    }

    fn into_plan(self) -> Plan {
        match self.planned {
            Planned::Offline(plan) => plan,
            Planned::Live(staged) => staged.plan,
        }
    }
}

/// A plan being carried out (see [`ResourceManager::apply`]), or, for a
/// read-only manager, the plan alone.
pub enum Execution {
    Planned(Box<Staged>),
    Syncing(Box<SyncRun>),
}

impl Execution {
    /// See [`SyncRun::fail_if_still_progressing`]; a plan alone has no
    /// health to judge.
    pub fn fail_if_still_progressing(&mut self, why: String) {
        if let Execution::Syncing(run) = self {
            run.fail_if_still_progressing(why);
        }
    }
}

impl ResourceManager {
    /// A manager that never writes: it plans against `target` (discovering
    /// its kinds first) or offline.
    pub async fn read_only(target: PlanTarget) -> Result<Self, EngineError> {
        Ok(match target {
            PlanTarget::Offline { reason } => ResourceManager {
                handle: Handle::Offline { reason },
                index: KindIndex::default(),
                records: None,
            },
            PlanTarget::Live(cluster) => ResourceManager {
                index: cluster.discover().await?,
                handle: Handle::ReadOnly(cluster),
                records: None,
            },
        })
    }

    /// A manager that syncs into `cluster`, with the kinds it serves now.
    pub async fn writable(cluster: Cluster) -> Result<Self, EngineError> {
        let index = cluster.discover().await?;
        Ok(Self::with_index(cluster, index))
    }

    /// As [`writable`](Self::writable), with kinds the caller discovered
    /// (`relbot serve` does every run, for its readiness).
    pub fn with_index(cluster: Cluster, index: KindIndex) -> Self {
        ResourceManager {
            handle: Handle::Writable(cluster),
            index,
            records: None,
        }
    }

    /// Keeps status records on `home` (relbot's own cluster) while syncing
    /// into another: a destination's manager.
    pub fn recording_on(mut self, home: Cluster) -> Self {
        self.records = Some(Handle::Writable(home));
        self
    }

    /// As [`recording_on`](Self::recording_on), for a manager that plans
    /// only: the records are read, never written.
    pub fn reading_records_on(mut self, home: ReadOnlyCluster) -> Self {
        self.records = Some(Handle::ReadOnly(home));
        self
    }

    /// The cluster a sync writes to; `None` for a manager that only plans.
    pub fn writable_cluster(&self) -> Option<&Cluster> {
        match &self.handle {
            Handle::Writable(cluster) => Some(cluster),
            Handle::ReadOnly(_) | Handle::Offline { .. } => None,
        }
    }

    /// Whether [`execute`](Self::execute) stops after the plan.
    pub fn is_dry_run(&self) -> bool {
        !matches!(self.handle, Handle::Writable(_))
    }

    /// The API server's address (none offline).
    pub fn server(&self) -> Option<&str> {
        match &self.handle {
            Handle::Offline { .. } => None,
            Handle::ReadOnly(cluster) => Some(cluster.server()),
            Handle::Writable(cluster) => Some(cluster.server()),
        }
    }

    /// Plans one application: its last status read, every object compared
    /// with the cluster and every change server-validated (in a stand-in
    /// namespace when its own is created by the plan; against the CRD's
    /// schema when the plan creates the CRD). Never writes. Takes the
    /// desired objects over: each becomes its apply body in place.
    pub async fn plan(
        &self,
        desired: DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> Staged {
        let DesiredApplication { app, manifests, .. } = desired;
        let read = match &self.handle {
            Handle::Offline { reason } => {
                let plan = offline_plan(&app, revision, manifests, reason);
                return Staged {
                    app,
                    revision: revision.map(str::to_string),
                    planned: Planned::Offline(plan),
                };
            }
            Handle::ReadOnly(cluster) => cluster,
            Handle::Writable(cluster) => cluster.read_only(),
        };
        let records = match &self.records {
            Some(Handle::ReadOnly(home)) => home,
            Some(Handle::Writable(home)) => home.read_only(),
            Some(Handle::Offline { .. }) | None => read,
        };
        let staged = plan_sync(
            read,
            records,
            &self.index,
            &app,
            manifests,
            revision,
            settings,
        )
        .await;
        Staged {
            app,
            revision: revision.map(str::to_string),
            planned: Planned::Live(Box::new(staged)),
        }
    }

    /// Starts carrying out a plan of [`plan`](Self::plan): PreSync hooks,
    /// then every stage and wave, each gated on the health of the one
    /// before (none of them when the plan has a problem). A read-only
    /// manager does nothing.
    pub async fn apply(&self, staged: Staged, settings: &SyncSettings) -> Execution {
        let Staged {
            app,
            revision,
            planned,
        } = staged;
        match (&self.handle, planned) {
            (Handle::Writable(cluster), Planned::Live(plan)) => {
                let records = match &self.records {
                    Some(Handle::Writable(home)) => home,
                    _ => cluster,
                };
                let mut run = SyncRun::start(
                    cluster,
                    records,
                    &self.index,
                    &app,
                    *plan,
                    revision.as_deref(),
                    settings,
                );
                run.apply().await;
                Execution::Syncing(Box::new(run))
            }
            (handle, planned) => {
                // Nothing more happens to a dry-run's application.
                if !matches!(handle, Handle::Offline { .. }) {
                    settings.progress.emit(|| ProgressEvent::AppFinished {
                        app: app.name.clone(),
                    });
                }
                Execution::Planned(Box::new(Staged {
                    app,
                    revision,
                    planned,
                }))
            }
        }
    }

    /// Waits up to `timeout` for the last wave applied to become healthy
    /// (`relbot sync --wait --timeout`); one that does not stops the run
    /// before prune. Nothing to wait for in a dry-run or a run that wrote
    /// nothing.
    pub async fn wait(&self, execution: &mut Execution, timeout: Duration) {
        if let Execution::Syncing(run) = execution {
            run.wait(timeout).await;
        }
    }

    /// Deletes what the application's inventory holds and git no longer
    /// has, as the plan decided it: prune off, objects marked
    /// `relbot.dev/prune: "false"` and a share above `sync.maxPrunePercent`
    /// are held; nothing is deleted after a step stopped the run, nor in a
    /// dry-run.
    pub async fn prune(&self, execution: &mut Execution) {
        if let Execution::Syncing(run) = execution {
            run.prune().await;
        }
    }

    /// Ends the run: PostSync or SyncFail hooks, every object's health, and
    /// the status record (skipped when nothing it says changed). A dry-run's
    /// answer is its plan.
    pub async fn finish(&self, execution: Execution) -> ChangeSet {
        match execution {
            Execution::Syncing(run) => ChangeSet::synced(run.finish().await),
            Execution::Planned(staged) => ChangeSet::planned(staged.into_plan()),
        }
    }

    /// Carries out a plan of [`plan`](Self::plan): [`apply`](Self::apply),
    /// [`wait`](Self::wait) when the settings ask for the last wave's
    /// health, [`prune`](Self::prune), [`finish`](Self::finish).
    pub async fn execute(&self, staged: Staged, settings: &SyncSettings) -> ChangeSet {
        let mut execution = self.apply(staged, settings).await;
        if settings.wait_for_last_wave {
            self.wait(&mut execution, settings.health_timeout).await;
        }
        self.prune(&mut execution).await;
        self.finish(execution).await
    }

    /// [`plan`](Self::plan), then [`execute`](Self::execute).
    pub async fn run(
        &self,
        desired: DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> ChangeSet {
        let staged = self.plan(desired, revision, settings).await;
        self.execute(staged, settings).await
    }

    /// Every application, one after another, with the run's settings.
    pub async fn run_all(
        &self,
        desired: Vec<DesiredApplication>,
        revision: Option<&str>,
        settings: &RunSettings,
    ) -> Vec<ChangeSet> {
        let mut changes = Vec::with_capacity(desired.len());
        for d in desired {
            let sync_settings = SyncSettings::new(&d.app, settings);
            changes.push(self.run(d, revision, &sync_settings).await);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::health::HealthRules;
    use crate::manifest::Manifest;
    use crate::progress::Progress;

    fn kubeconfig_for(server: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        );
        std::fs::write(file.path(), yaml).expect("write kubeconfig");
        file
    }

    #[tokio::test]
    async fn a_refused_connection_means_an_offline_plan_that_names_it() {
        // Nothing listens on a port we just bound and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kubeconfig = kubeconfig_for(&format!("http://127.0.0.1:{port}"));
        let target = ClusterTarget {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: None,
        };
        match open_for_plan(&target).await.expect("offline, not an error") {
            PlanTarget::Offline { reason } => {
                assert!(
                    reason.contains(&format!("127.0.0.1:{port}"))
                        && reason.contains("cannot be reached")
                        && reason.to_lowercase().contains("refused"),
                    "{reason}"
                )
            }
            PlanTarget::Live(_) => panic!("nothing listens there"),
        }
        // A real sync refuses instead of guessing.
        assert!(open_for_sync(&target).await.is_err());
    }

    #[tokio::test]
    async fn a_cluster_that_accepts_but_never_answers_is_named_as_silent() {
        // The kernel completes the handshake; nobody ever reads or replies.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let kubeconfig = kubeconfig_for(&format!("http://127.0.0.1:{port}"));
        let target = ClusterTarget {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: None,
        };
        match open_for_plan(&target).await.expect("offline, not an error") {
            PlanTarget::Offline { reason } => assert!(
                reason.contains(&format!(
                    "did not answer within {}s",
                    DRY_RUN_PROBE_TIMEOUT.as_secs()
                )),
                "{reason}"
            ),
            PlanTarget::Live(_) => panic!("nothing answers there"),
        }
        drop(listener);
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_is_an_error_not_offline() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "clusters: [this is not a kubeconfig").unwrap();
        let target = ClusterTarget {
            kubeconfig: Some(file.path().to_path_buf()),
            context: None,
        };
        let error = open_for_plan(&target)
            .await
            .expect_err("a broken kubeconfig");
        assert!(
            error
                .to_string()
                .contains(&file.path().display().to_string()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn offline_plans_cover_every_application() {
        let app: Application = serde_saphyr::from_str("name: a\npath: a\nnamespace: a\n").unwrap();
        let desired = [DesiredApplication {
            app,
            manifests: vec![Manifest {
                object: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "a"}}),
                origin: crate::manifest::Origin {
                    file: "a/c.yaml".into(),
                    line: 1,
                },
            }],
            notes: Vec::new(),
        }];
        let settings = RunSettings {
            concurrency: 8,
            status_namespace: "relbot".into(),
            progress: Progress::none(),
            health_rules: HealthRules::default(),
            wait_for_last_wave: true,
        };
        let target = PlanTarget::Offline {
            reason: "test".into(),
        };
        let plans = plan_all(&target, desired.to_vec(), Some("abc"), &settings)
            .await
            .unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].counts().create, 1);
        // Changes and no problem: a dry-run's "changes found".
        assert!(plans[0].problems.is_empty() && plans[0].has_differences());
    }
}
