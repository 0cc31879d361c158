//! One run of the reconciler, shared by the CLI and the server:
//! desired applications (already rendered from a resolved source) →
//! plan → (apply → report). Callers fetch and render; the engine never
//! touches git.

use std::time::Duration;

use super::apply::sync_application;
use super::plan::{Plan, offline_plan};
use super::planner::{PlanOptions, plan_application};
use super::result::SyncResult;
use super::settings::{RunSettings, SyncSettings};
use super::status;
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
    match target {
        PlanTarget::Offline { reason } => Ok(desired
            .iter()
            .map(|d| offline_plan(&d.app, revision, &d.manifests, reason))
            .collect()),
        PlanTarget::Live(cluster) => {
            let index = cluster.discover().await?;
            let mut plans = Vec::new();
            for d in desired {
                let app = &d.app.name;
                settings.progress.emit(|| ProgressEvent::Planning {
                    app: app.clone(),
                    objects: d.manifests.len(),
                });
                plans.push(plan_live(cluster, &index, d, revision, settings, true).await);
                settings
                    .progress
                    .emit(|| ProgressEvent::AppFinished { app: app.clone() });
            }
            Ok(plans)
        }
    }
}

async fn plan_live(
    cluster: &ReadOnlyCluster,
    index: &KindIndex,
    desired: &DesiredApplication,
    revision: Option<&str>,
    settings: &RunSettings,
    validate: bool,
) -> Plan {
    let previous = status::read(cluster, &settings.status_namespace, &desired.app.name).await;
    let options = PlanOptions {
        validate,
        concurrency: settings.concurrency,
    };
    let kinds = previous
        .as_ref()
        .map(|p| p.kinds.clone())
        .unwrap_or_default();
    plan_application(
        cluster,
        index,
        &desired.app,
        &desired.manifests,
        revision,
        &kinds,
        options,
    )
    .await
    .plan
}

/// Syncs every application, one after another, and records each result.
pub async fn sync_all(
    cluster: &Cluster,
    desired: &[DesiredApplication],
    revision: Option<&str>,
    settings: &RunSettings,
) -> Result<Vec<SyncResult>, EngineError> {
    let index = cluster.discover().await?;
    let mut results = Vec::new();
    for d in desired {
        let sync_settings = SyncSettings::new(&d.app, settings);
        results.push(
            sync_application(
                cluster,
                &index,
                &d.app,
                &d.manifests,
                revision,
                &sync_settings,
            )
            .await,
        );
    }
    Ok(results)
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
