//! One run over applications that may sync into different clusters: each
//! application goes through the [`ResourceManager`] of its destination (or
//! of relbot's own cluster when it names none), and every manager keeps its
//! status records on relbot's own cluster. A destination is opened (Secret
//! read, client reused or rebuilt, reachability checked, kinds discovered)
//! once a run; one that cannot be opened fails only its own applications.

use std::collections::HashMap;

use chrono::Utc;

use super::change_set::{ChangeSet, Detail};
use super::engine::{DRY_RUN_PROBE_TIMEOUT, PlanTarget, ResourceManager, SYNC_PROBE_TIMEOUT};
use super::problem::PlanProblem;
use super::result::{RunPhase, SyncResult};
use super::settings::SyncSettings;
use crate::cluster::client::{Cluster, ClusterError, ReadOnlyCluster};
use crate::cluster::destination::{DestinationError, Destinations, SecretKey};
use crate::cluster::health::HealthStatus;
use crate::config::{Application, Destination};
use crate::source::DesiredApplication;

/// What the run may do to relbot's own cluster.
enum Home {
    Writable(Cluster),
    ReadOnly(ReadOnlyCluster),
    /// A dry-run with no cluster: destinations cannot be looked up either.
    Offline,
}

/// Which manager an application goes through: relbot's own cluster's, or
/// that of the destination opened from this Secret. A caller that syncs
/// applications side by side routes them all first (which needs the fleet
/// alone), then asks for each one's [`manager`](Fleet::manager).
pub enum Route {
    Home,
    Destination(SecretKey),
}

/// The managers of one run, by destination.
pub struct Fleet<'a> {
    home_manager: &'a ResourceManager,
    home: Home,
    destinations: Option<&'a Destinations>,
    opened: HashMap<SecretKey, Result<ResourceManager, DestinationError>>,
}

impl<'a> Fleet<'a> {
    /// A sync: `home_manager` syncs applications without a destination
    /// into `home`, where every application's record is kept.
    pub fn writable(
        home_manager: &'a ResourceManager,
        home: Cluster,
        destinations: &'a Destinations,
    ) -> Self {
        Self::with(home_manager, Home::Writable(home), Some(destinations))
    }

    /// A dry-run or diff; `destinations` (read through relbot's own
    /// cluster) is `None` when planning offline.
    pub fn read_only(
        home_manager: &'a ResourceManager,
        destinations: Option<&'a Destinations>,
    ) -> Self {
        match destinations {
            Some(destinations) => Self::with(
                home_manager,
                Home::ReadOnly(destinations.home().clone()),
                Some(destinations),
            ),
            None => Self::with(home_manager, Home::Offline, None),
        }
    }

    fn with(
        home_manager: &'a ResourceManager,
        home: Home,
        destinations: Option<&'a Destinations>,
    ) -> Self {
        Fleet {
            home_manager,
            home,
            destinations,
            opened: HashMap::new(),
        }
    }

    /// The manager `desired` syncs through, or, when its destination cannot
    /// be used, the answer for it (see [`refused`](Self::refused)): what
    /// every caller of the fleet does with an application first.
    pub async fn manager_or_refusal(
        &mut self,
        desired: &DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
    ) -> Result<&ResourceManager, ChangeSet> {
        let route = self.route(&desired.app, settings).await;
        match self.manager(&route) {
            Ok(manager) => Ok(manager),
            // Rare (a broken destination), so the objects are copied here
            // rather than handed back to the caller on every other path.
            Err(error) => Err(self
                .refused(desired.clone(), revision, settings, &error)
                .await),
        }
    }

    /// Where `app` syncs, its destination opened (or found unusable) on
    /// first use this run.
    pub async fn route(&mut self, app: &Application, settings: &SyncSettings) -> Route {
        let Some(destination) = app.destination() else {
            return Route::Home;
        };
        let at = SecretKey {
            namespace: settings.status_namespace.clone(),
            name: destination.name().to_string(),
            key: destination.kube_config.secret_ref.key.clone(),
        };
        if !self.opened.contains_key(&at) {
            let opened = self.open(destination, &at).await;
            if let Err(e) = &opened {
                tracing::warn!(application = %app.name, "{e}");
            }
            self.opened.insert(at.clone(), opened);
        }
        Route::Destination(at)
    }

    /// The manager of a [`route`](Self::route)d application.
    pub fn manager(&self, route: &Route) -> Result<&ResourceManager, DestinationError> {
        match route {
            Route::Home => Ok(self.home_manager),
            Route::Destination(at) => match &self.opened[at] {
                Ok(manager) => Ok(manager),
                Err(error) => Err(error.clone()),
            },
        }
    }

    async fn open(
        &self,
        destination: &Destination,
        at: &SecretKey,
    ) -> Result<ResourceManager, DestinationError> {
        let name = destination.name();
        let Some(destinations) = self
            .destinations
            .filter(|_| !matches!(self.home, Home::Offline))
        else {
            return Err(DestinationError::silent(
                name,
                format!(
                    "relbot's own cluster is not reachable, so the kubeconfig in Secret {}/{name} cannot be read",
                    at.namespace
                ),
            ));
        };
        let client = destinations.client(at).await?;
        let reached = |e: ClusterError| match e {
            ClusterError::Unreachable { .. } => DestinationError::silent(name, e.to_string()),
            other => DestinationError::new(name, other.to_string()),
        };
        match &self.home {
            Home::Writable(home) => {
                let cluster = client.writable();
                cluster.ping(SYNC_PROBE_TIMEOUT).await.map_err(reached)?;
                let manager = ResourceManager::writable(cluster)
                    .await
                    .map_err(|e| DestinationError::new(name, e.to_string()))?;
                Ok(manager.recording_on(home.clone()))
            }
            Home::ReadOnly(home) => {
                let cluster = client.read_only();
                cluster.ping(DRY_RUN_PROBE_TIMEOUT).await.map_err(reached)?;
                let manager = ResourceManager::read_only(PlanTarget::Live(cluster))
                    .await
                    .map_err(|e| DestinationError::new(name, e.to_string()))?;
                Ok(manager.reading_records_on(home.clone()))
            }
            Home::Offline => unreachable!("handled above"),
        }
    }

    /// The answer for an application whose destination cannot be used: a
    /// failed sync, or a dry-run planned offline (like an unreachable home
    /// cluster) that is an error unless the cluster was merely silent.
    pub async fn refused(
        &self,
        desired: DesiredApplication,
        revision: Option<&str>,
        settings: &SyncSettings,
        error: &DestinationError,
    ) -> ChangeSet {
        let message = error.to_string();
        if let Home::Writable(_) = self.home {
            return ChangeSet::synced(failed(&desired.app.name, revision, error));
        }
        let offline = match ResourceManager::read_only(PlanTarget::Offline {
            reason: message.clone(),
        })
        .await
        {
            Ok(manager) => manager,
            Err(e) => unreachable!("an offline manager opens nothing: {e}"),
        };
        let mut changes = offline.run(desired, revision, settings).await;
        if !error.silent {
            if let Detail::Plan(plan) = &mut changes.detail {
                plan.problems.push(PlanProblem {
                    key: None,
                    origin: None,
                    message: message.clone(),
                });
            }
            changes.errors.push(message);
        }
        changes
    }
}

/// A sync that never started: its destination could not be used. Nothing
/// is recorded on the cluster, so the stored record (and its inventory of
/// kinds, which a later prune needs) stays as the last real run left it.
pub fn failed(application: &str, revision: Option<&str>, error: &DestinationError) -> SyncResult {
    SyncResult {
        application: application.to_string(),
        revision: revision.map(str::to_string),
        server: format!("cluster {}", error.name),
        started_at: Utc::now(),
        phase: RunPhase::Failed,
        health: HealthStatus::Unknown,
        health_since: None,
        objects: Vec::new(),
        hooks: Vec::new(),
        errors: vec![error.to_string()],
        notes: Vec::new(),
        requests: Default::default(),
        status_recorded: false,
        timings: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::health::HealthRules;
    use crate::manifest::{Manifest, Origin};
    use crate::progress::Progress;
    use crate::sync::plan::{Action, ClusterView};
    use crate::sync::settings::RunSettings;

    fn desired(application_yaml: &str) -> DesiredApplication {
        DesiredApplication {
            app: serde_saphyr::from_str(application_yaml).unwrap(),
            manifests: vec![Manifest {
                object: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "a"}}),
                origin: Origin {
                    file: "a/c.yaml".into(),
                    line: 1,
                },
            }],
            notes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn offline_a_destination_is_refused_into_an_offline_plan_and_home_goes_through_home() {
        let home = ResourceManager::read_only(PlanTarget::Offline {
            reason: "no cluster configured".into(),
        })
        .await
        .unwrap();
        let mut fleet = Fleet::read_only(&home, None);
        let run = RunSettings {
            concurrency: 8,
            status_namespace: "relbot".into(),
            progress: Progress::none(),
            health_rules: HealthRules::default(),
            wait_for_last_wave: true,
        };

        let at_home = desired("name: a\npath: a\nnamespace: a\n");
        let settings = SyncSettings::new(&at_home.app, &run);
        let manager = fleet
            .manager_or_refusal(&at_home, Some("abc"), &settings)
            .await
            .expect("an application without a destination syncs at home");
        assert!(std::ptr::eq(manager, &home));

        let remote = desired(
            "name: r\npath: a\nnamespace: a\ndestination:\n  kubeConfig:\n    secretRef: { name: prod-eu }\n",
        );
        let settings = SyncSettings::new(&remote.app, &run);
        let Err(refused) = fleet
            .manager_or_refusal(&remote, Some("abc"), &settings)
            .await
        else {
            panic!("with no home cluster the destination's Secret cannot be read");
        };
        // Like an unreachable home cluster: planned offline, not an error.
        assert!(refused.errors.is_empty(), "{:?}", refused.errors);
        let Detail::Plan(plan) = &refused.detail else {
            panic!("a dry-run answers with a plan");
        };
        let ClusterView::Offline { reason } = &plan.cluster else {
            panic!("planned offline: {:?}", plan.cluster);
        };
        assert!(
            reason.contains("Secret relbot/prod-eu cannot be read"),
            "{reason}"
        );
        assert!(plan.problems.is_empty());
        assert_eq!(plan.changes[0].action, Action::Create);
    }
}
