//! Bump runs as the server makes them: the registry client kept between
//! runs, the GitHub client and working clone from the configuration (the
//! same [`Publisher`] `relbot bump` builds), application health from the
//! status page's last sync results — and what a run leaves behind: PR
//! counters, pending PRs on the page, follow-up syncs and rollback checks.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::http::AppState;
use super::status_page::PendingPr;
use super::trigger::{Selector, Trigger};
use crate::cluster::health::HealthStatus;
use crate::config::LoadedConfig;
use crate::release::bump::{
    AppObservation, BumpError, BumpOptions, BumpReport, MergeState, PolicyOutcome, Publisher,
    PublisherError, RollbackDecision, StaticHealth, run_bumps,
};
use crate::release::registry::{
    CredentialsError, RegistryClient, RegistryCredentials, RegistryError, RegistrySettings,
    StatsSnapshot,
};

/// Why a bump run could not start or finish (a policy's own failure is in
/// its report line).
#[derive(Debug, thiserror::Error)]
pub enum BumpRunError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Publisher(#[from] PublisherError),
    #[error(transparent)]
    Bump(#[from] BumpError),
}

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
    pub fn client(&self, config: &LoadedConfig) -> Result<Arc<RegistryClient>, BumpRunError> {
        let credentials = RegistryCredentials::from_environment()?;
        let registries = &config.config.registries;
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = slot.as_ref()
            && &cached.registries == registries
            && cached.credentials == credentials
        {
            return Ok(cached.client.clone());
        }
        let client = Arc::new(RegistryClient::new(
            RegistrySettings::from_config(registries),
            credentials.clone(),
        )?);
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

/// One bump run over `only` (every policy when empty), publishing through
/// GitHub; the registry counters are recorded whether it worked or not.
pub async fn run(
    config: &LoadedConfig,
    cache_dir: &Path,
    state: &AppState,
    registries: &RegistryCache,
    only: &[String],
) -> Result<BumpReport, BumpRunError> {
    let registry = registries.client(config)?;
    let health = StaticHealth(
        state
            .status()
            .apps
            .iter()
            .map(|a| {
                let observed = AppObservation {
                    health: HealthStatus::parse(&a.health),
                    since: a.health_since,
                    revision: a.revision.clone(),
                    synced_at: a.last_run,
                    unhealthy: a.unhealthy.clone(),
                };
                (a.name.clone(), observed)
            })
            .collect(),
    );
    let publisher =
        Publisher::from_config(&config.config, cache_dir.join("bump"))?.with_health(&health);
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
    .await;
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

/// The tags the last bump run of each policy found (in use in git, or
/// proposed as the newest allowed): a registry webhook announcing one of
/// them again is no news ([`crate::server::trigger::News`]). Replaced per
/// policy at each run, so a tag re-pushed much later is judged against the
/// latest run only; a scheduled bump covers a moved tag in any case.
#[derive(Default)]
pub struct SeenTags(std::sync::Mutex<std::collections::BTreeMap<String, BTreeSet<String>>>);

impl SeenTags {
    pub fn record(&self, report: &BumpReport) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for line in &report.policies {
            if matches!(line.outcome, PolicyOutcome::Failed { .. }) {
                // The registry may not have answered: nothing was seen.
                seen.remove(&line.policy);
                continue;
            }
            let tags = line
                .current
                .iter()
                .cloned()
                .chain(line.bump.as_ref().map(|plan| plan.to.clone()))
                .collect();
            seen.insert(line.policy.clone(), tags);
        }
    }

    pub fn contains(&self, policy: &str, tag: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(policy)
            .is_some_and(|tags| tags.contains(tag))
    }
}

/// What a bump run leaves for later: a merged PR is a new commit to sync
/// now (not at the next poll), and a rollback waiting out its grace period
/// is asked again when the period ends.
pub fn follow_up_bumps(state: &AppState, report: &BumpReport, stop: &CancellationToken) {
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
                    queue.submit(Trigger::bump(
                        Selector::only([policy]),
                        "rollback grace period over",
                    ));
                }
            }
        });
    }
}

/// Publishes a bump report: PR counters and the status page's pending PRs.
pub fn record_bumps(state: &AppState, report: &BumpReport) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn loaded(yaml: &str) -> LoadedConfig {
        LoadedConfig {
            path: PathBuf::from("relbot.yaml"),
            config: serde_saphyr::from_str(yaml).expect("config"),
            policies: Vec::new(),
        }
    }

    #[test]
    fn bump_runs_share_one_registry_client_until_registries_change() {
        let cache = RegistryCache::default();
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
