//! One run of the reconciler, shared by the CLI and the server:
//! desired applications (already rendered from a resolved source) →
//! plan → (apply → report), through one [`ResourceManager`] whose answer is
//! a [`ChangeSet`] for a dry-run and a sync alike. Callers fetch and
//! render; the engine never touches git.

use std::time::Duration;

use super::apply::{StagedPlan, apply_plan, plan_sync};
use super::change_set::ChangeSet;
use super::plan::{Plan, offline_plan};
use super::result::SyncResult;
use super::settings::{RunSettings, SyncSettings};
use crate::cluster::client::{Cluster, ClusterError, ClusterTarget, ReadOnlyCluster, locate};
use crate::cluster::discovery::KindIndex;
use crate::config::Application;
use crate::manifest::Manifest;
use crate::progress::ProgressEvent;

/// How long a dry-run waits for a configured cluster before planning offline.
pub const DRY_RUN_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a real sync waits for the cluster to answer at all.
pub const SYNC_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One application's rendered desired state.
#[derive(Debug, Clone)]
pub struct DesiredApplication {
    pub app: Application,
    pub manifests: Vec<Manifest>,
}

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

/// Plans every application (a dry-run or a diff): never writes. Live plans
/// dry-run every difference on the server.
pub async fn plan_all(
    target: &PlanTarget,
    desired: &[DesiredApplication],
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
    desired: &[DesiredApplication],
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
/// what the cluster has (every change server-validated), then
/// [`execute`](Self::execute) the plan. A read-only manager stops after the
/// plan; a writable one applies it stage by stage and wave by wave, waits
/// for health between waves, prunes last and records the result. Either
/// way the answer is one [`ChangeSet`].
#[derive(Debug, Clone)]
pub struct ResourceManager {
    handle: Handle,
    /// Served kinds; empty offline.
    index: KindIndex,
    /// Where status records are read and written when that is not the
    /// cluster synced into (an application's destination): relbot's own.
    records: Option<Handle>,
}

/// A plan on its way to [`ResourceManager::execute`].
#[derive(Debug)]
pub enum Staged {
    /// Planned without a cluster.
    Offline(Plan),
    /// Planned against the live cluster, with what applying it needs.
    Live(Box<StagedPlan>),
}

impl Staged {
    pub fn plan(&self) -> &Plan {
        match self {
            Staged::Offline(plan) => plan,
            Staged::Live(staged) => &staged.plan,
        }
    }

    fn into_plan(self) -> Plan {
        match self {
            Staged::Offline(plan) => plan,
            Staged::Live(staged) => staged.plan,
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

    /// The cluster this manager syncs into (`None` offline).
    pub fn server(&self) -> Option<&str> {
        match &self.handle {
            Handle::Offline { .. } => None,
            Handle::ReadOnly(cluster) => Some(cluster.server()),
            Handle::Writable(cluster) => Some(cluster.server()),
        }
    }

    /// Whether [`execute`](Self::execute) stops after the plan.
    pub fn is_dry_run(&self) -> bool {
        !matches!(self.handle, Handle::Writable(_))
    }

    /// Plans one application: its last status read, every object compared
    /// with the cluster and every change server-validated (in a stand-in
    /// namespace when its own is created by the plan; against the CRD's
    /// schema when the plan creates the CRD). Never writes.
    pub async fn plan(
        &self,
        desired: &DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> Staged {
        let read = match &self.handle {
            Handle::Offline { reason } => {
                return Staged::Offline(offline_plan(
                    &desired.app,
                    revision,
                    &desired.manifests,
                    reason,
                ));
            }
            Handle::ReadOnly(cluster) => cluster,
            Handle::Writable(cluster) => cluster.read_only(),
        };
        let records = match &self.records {
            Some(Handle::ReadOnly(home)) => home,
            Some(Handle::Writable(home)) => home.read_only(),
            Some(Handle::Offline { .. }) | None => read,
        };
        Staged::Live(Box::new(
            plan_sync(
                read,
                records,
                &self.index,
                &desired.app,
                &desired.manifests,
                revision,
                settings,
            )
            .await,
        ))
    }

    /// Carries out a plan of [`plan`](Self::plan): nothing at all for a
    /// read-only manager; otherwise the waves (none of them when the plan
    /// has a problem), health between them, prune, hooks and the status
    /// record.
    pub async fn execute(
        &self,
        desired: &DesiredApplication,
        staged: Staged,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> ChangeSet {
        match (&self.handle, staged) {
            (Handle::Writable(cluster), Staged::Live(staged)) => ChangeSet::synced(
                apply_plan(
                    cluster,
                    match &self.records {
                        Some(Handle::Writable(home)) => home,
                        _ => cluster,
                    },
                    &self.index,
                    &desired.app,
                    &desired.manifests,
                    *staged,
                    revision,
                    settings,
                )
                .await,
            ),
            (handle, staged) => {
                if !matches!(handle, Handle::Offline { .. }) {
                    settings.progress.emit(|| ProgressEvent::AppFinished {
                        app: desired.app.name.clone(),
                    });
                }
                ChangeSet::planned(staged.into_plan())
            }
        }
    }

    /// [`plan`](Self::plan), then [`execute`](Self::execute).
    pub async fn run(
        &self,
        desired: &DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> ChangeSet {
        let staged = self.plan(desired, revision, settings).await;
        self.execute(desired, staged, revision, settings).await
    }

    /// Every application, one after another, with the run's settings.
    pub async fn run_all(
        &self,
        desired: &[DesiredApplication],
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
        let plans = plan_all(&target, &desired, Some("abc"), &settings)
            .await
            .unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].counts().create, 1);
        assert_eq!(crate::sync::report::plans_exit_code(&plans), 1);
    }
}
