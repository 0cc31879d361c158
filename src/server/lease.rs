//! Leader election across replicas with a `coordination.k8s.io/v1` Lease,
//! following client-go's leaderelection: a candidate takes the Lease when it
//! is absent, released (no holder) or expired; the leader renews it every
//! retry period and steps down when it could not renew within the renew
//! deadline, which is shorter than the lease duration, so it stops before
//! anyone else may start.
//!
//! Expiry is judged by the candidate's own clock: a Lease is expired when its
//! record has not changed for `leaseDurationSeconds` since this process last
//! saw it change (clock skew between nodes does not matter). Writes use the
//! Lease's resourceVersion, so two candidates racing for it cannot both win:
//! the loser gets 409 Conflict.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::queue::LeaderState;

/// Where the Lease lives and how it is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name; must be unique).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal (15 s).
    pub lease_duration: Duration,
    /// The leader steps down when it has not renewed for this long (10 s).
    pub renew_deadline: Duration,
    /// Acquire attempts and renewals happen this often (2 s).
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseSettings {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn duration_seconds(&self) -> i32 {
        self.lease_duration.as_secs_f64().ceil().max(1.0) as i32
    }
}

/// The Lease problem before the first request: not ready, nothing to log.
const NOT_ASKED_YET: &str = "no Lease request answered yet";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "cannot read or write Lease {namespace}/{name}: {} (does relbot's ServiceAccount have get/create/update on leases.coordination.k8s.io?)",
        crate::cluster::kube_error::describe(.source)
    )]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot take the leader-election Lease {name}: namespace {namespace} does not exist; create it (kubectl create namespace {namespace}) or name another with --lease-namespace or RELBOT_LEASE_NAMESPACE"
    )]
    MissingNamespace { namespace: String, name: String },
}

/// What this process last saw of the Lease, and when.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    duration: Duration,
    resource_version: Option<String>,
    seen_at: Instant,
}

impl Observed {
    fn same_record(&self, other: &Observed) -> bool {
        self.holder == other.holder
            && self.renew_time == other.renew_time
            && self.resource_version == other.resource_version
    }
}

/// One candidate for leadership.
pub struct LeaseElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    /// Why the last Lease request failed; `None` once one succeeded.
    problem: watch::Sender<Option<String>>,
    observed: Mutex<Option<Observed>>,
    /// The last successful attempt took the Lease from another holder
    /// whose record had expired (not from nobody, not a renewal).
    took_over: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

impl LeaseElector {
    pub fn new(client: kube::Client, settings: LeaseSettings, metrics: Arc<Metrics>) -> Self {
        let api = Api::namespaced(client, &settings.namespace);
        let (leader, _) = watch::channel(false);
        let (problem, _) = watch::channel(Some(NOT_ASKED_YET.to_string()));
        metrics.lease_held.set(&[], 0.0);
        LeaseElector {
            api,
            settings,
            leader,
            problem,
            observed: Mutex::new(None),
            took_over: Default::default(),
            metrics,
        }
    }

    /// The state the update queue follows.
    pub fn leader_state(&self) -> LeaderState {
        LeaderState::from_receiver(self.leader.subscribe())
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Why the Lease cannot be used (`None` while it can): readiness follows it.
    pub fn problem(&self) -> watch::Receiver<Option<String>> {
        self.problem.subscribe()
    }

    /// Publishes the outcome of one attempt; a problem is logged when it
    /// starts or changes, not at every retry.
    fn report(&self, problem: Option<String>) {
        self.problem.send_if_modified(|current| {
            if *current == problem {
                return false;
            }
            match &problem {
                Some(message) => tracing::warn!("{message}"),
                None if current.as_deref() != Some(NOT_ASKED_YET) => {
                    tracing::info!(lease = %self.settings.name, "the Lease can be used again")
                }
                None => {}
            }
            *current = problem.clone();
            true
        });
    }

    /// Who holds the Lease: this replica while it leads, else the holder
    /// last read from the Lease.
    pub fn holder(&self) -> Option<String> {
        if self.is_leader() {
            return Some(self.settings.identity.clone());
        }
        self.observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|o| o.holder.clone())
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    fn set_leader(&self, leader: bool) {
        if self.leader.send_replace(leader) != leader {
            self.metrics
                .lease_held
                .set(&[], if leader { 1.0 } else { 0.0 });
            if leader {
                tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became leader");
            } else {
                tracing::warn!(identity = %self.settings.identity, lease = %self.settings.name, "no longer leader");
            }
        }
    }

    fn my_spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let mine = previous.and_then(|p| p.holder_identity.as_deref())
            == Some(self.settings.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.settings.duration_seconds()),
            acquire_time: if mine {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if mine || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    fn observe(&self, lease: &Lease) -> Observed {
        let spec = lease.spec.clone().unwrap_or_default();
        let now = Instant::now();
        let fresh = Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.map(|t| t.0),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
            resource_version: lease.metadata.resource_version.clone(),
            seen_at: now,
        };
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            // Unchanged record: keep the time we first saw it.
            Some(old) if old.same_record(&fresh) => old.clone(),
            _ => {
                *observed = Some(fresh.clone());
                fresh
            }
        }
    }

    /// Notes the Lease as read by someone else's request (the shard loop
    /// lists every Lease once a pass), so its expiry is timed from when the
    /// record was first seen, not from when this replica first asked for it.
    pub fn note(&self, lease: &Lease) {
        self.observe(lease);
    }

    /// How long until the Lease, held by another replica, may be taken
    /// (on this replica's clock); None when it is not held by another.
    pub fn expires_in(&self) -> Option<Duration> {
        let observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let observed = observed.as_ref()?;
        let other = observed
            .holder
            .as_deref()
            .is_some_and(|h| h != self.settings.identity);
        other.then(|| observed.duration.saturating_sub(observed.seen_at.elapsed()))
    }

    /// Whether the last successful attempt took the Lease over from another
    /// holder that stopped renewing.
    pub fn took_over(&self) -> bool {
        self.took_over.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One attempt to take or keep the Lease; true when this replica holds it
    /// afterwards. Does not change the published leader state.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaseError> {
        let existing = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let Some(existing) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.my_spec(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    self.took_over
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    Ok(true)
                }
                Err(kube::Error::Api(status))
                    if status.is_already_exists() || status.is_conflict() =>
                {
                    Ok(false)
                }
                // The Lease was absent and cannot be created: its namespace is.
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    Err(LeaseError::MissingNamespace {
                        namespace: self.settings.namespace.clone(),
                        name: self.settings.name.clone(),
                    })
                }
                Err(e) => Err(self.api_error(e)),
            };
        };
        let observed = self.observe(&existing);
        let held_by_other = observed
            .holder
            .as_deref()
            .is_some_and(|h| h != self.settings.identity);
        if held_by_other && observed.seen_at.elapsed() < observed.duration {
            return Ok(false);
        }
        let mut updated = existing.clone();
        updated.spec = Some(self.my_spec(existing.spec.as_ref()));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                self.took_over
                    .store(held_by_other, std::sync::atomic::Ordering::Relaxed);
                Ok(true)
            }
            // Someone else wrote first (renewed, or won the race to take it).
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Gives the Lease up so another replica can take it at once: clears the
    /// holder (only if this replica still holds it).
    pub async fn release(&self) -> Result<(), LeaseError> {
        self.set_leader(false);
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "released the Lease");
                Ok(())
            }
            // Someone took it meanwhile: nothing of ours to release.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Campaigns and renews until `stop` fires; publishes leadership changes.
    /// Does not release the Lease: call [`ElectorHandle::stop_and_release`]
    /// after the update queue drained.
    async fn campaign(&self, stop: CancellationToken) {
        let mut last_renewal: Option<Instant> = None;
        loop {
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                result = tokio::time::timeout(self.settings.retry_period.max(Duration::from_millis(100)) * 2, self.try_acquire_or_renew()) => result,
            };
            match attempt {
                Ok(Ok(true)) => {
                    self.report(None);
                    last_renewal = Some(Instant::now());
                    self.set_leader(true);
                }
                Ok(Ok(false)) => {
                    self.report(None);
                    last_renewal = None;
                    self.set_leader(false);
                }
                Ok(Err(e)) => self.report(Some(e.to_string())),
                Err(_) => self.report(Some(format!(
                    "the API server did not answer for the Lease {}/{} in time",
                    self.settings.namespace, self.settings.name
                ))),
            }
            // Could not renew in time: stop before the Lease can expire for
            // the others.
            if self.is_leader()
                && last_renewal.is_none_or(|t| t.elapsed() >= self.settings.renew_deadline)
            {
                self.set_leader(false);
            }
            let pause = jitter(
                self.settings.retry_period,
                if self.is_leader() { 0.0 } else { 0.2 },
            );
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Starts campaigning in a task.
    pub fn spawn(self: Arc<Self>) -> ElectorHandle {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let elector = self.clone();
            let stop = stop.clone();
            async move { elector.campaign(stop).await }
        });
        ElectorHandle {
            elector: self,
            stop,
            task,
        }
    }
}

fn jitter(base: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 {
        return base;
    }
    let factor = 1.0 + rand::random::<f64>() * fraction;
    base.mul_f64(factor)
}

/// A running campaign.
pub struct ElectorHandle {
    elector: Arc<LeaseElector>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ElectorHandle {
    pub fn elector(&self) -> &Arc<LeaseElector> {
        &self.elector
    }

    /// Shutdown: stop renewing and hand the Lease over.
    pub async fn stop_and_release(self) -> Result<(), LeaseError> {
        self.stop.cancel();
        let _ = self.task.await;
        self.elector.release().await
    }

    /// Simulates a crash (tests): stop renewing without releasing; the
    /// others take over once the Lease expires.
    pub async fn abandon(self) {
        self.task.abort();
        let _ = self.task.await;
        self.elector.set_leader(false);
    }
}
