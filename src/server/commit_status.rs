//! Commit statuses for each sync: `relbot/<application>` on the synced
//! commit, pending when the application's run starts, then success, failure
//! or error with one line and a link to the application's page. Opt-in
//! (`github.commitStatuses`). Posting is best effort: a refusal is logged
//! and counted (`relbot_commit_statuses_total{result="failed"}`), never
//! a reason to fail the sync. A state already posted on a commit is not
//! posted again: a scheduled poll of an unchanged application posts nothing,
//! where a thousand applications polled every few minutes would otherwise
//! spend GitHub's hourly request budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::LoadedConfig;
use crate::release::github::statuses::CommitState;
use crate::release::github::{GitHubClient, GithubSettings};
use crate::sync::result::{RunPhase, SyncResult};

use super::metrics::Metrics;
use super::page::overview::url_segment;

pub struct CommitStatuses {
    client: GitHubClient,
    page_url: Option<String>,
    posted: Arc<Posted>,
}

/// The last state posted per application and on which commit, kept across
/// runs (by the reconciler; a restart posts each once more).
#[derive(Debug, Default)]
pub struct Posted(Mutex<HashMap<String, (String, CommitState)>>);

impl Posted {
    fn is_news(&self, application: &str, sha: &str, state: CommitState) -> bool {
        let posted = self.0.lock().unwrap_or_else(|e| e.into_inner());
        posted
            .get(application)
            .is_none_or(|(on, was)| on != sha || *was != state)
    }

    fn remember(&self, application: &str, sha: &str, state: CommitState) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(application.to_string(), (sha.to_string(), state));
    }
}

impl CommitStatuses {
    /// None when statuses are off; an error when they are on but no GitHub
    /// client can be built (e.g. no token).
    pub fn from_config(
        config: &LoadedConfig,
        posted: &Arc<Posted>,
    ) -> Option<Result<CommitStatuses, String>> {
        let github = config
            .config
            .github
            .as_ref()
            .filter(|g| g.commit_statuses)?;
        let client = GithubSettings::from_config(github, |name| std::env::var(name).ok())
            .map_err(|e| e.to_string())
            .and_then(|settings| GitHubClient::new(settings).map_err(|e| e.to_string()));
        Some(client.map(|client| {
            CommitStatuses {
                client,
                page_url: github
                    .status_page_url
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_string())
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                posted: posted.clone(),
            }
        }))
    }

    fn target_url(&self, application: &str) -> Option<String> {
        self.page_url
            .as_ref()
            .map(|base| format!("{base}/applications/{}", url_segment(application)))
    }

    pub async fn started(&self, metrics: &Metrics, application: &str, sha: &str) {
        self.post(
            metrics,
            application,
            sha,
            CommitState::Pending,
            &format!("relbot is syncing {application}"),
        )
        .await;
    }

    pub async fn finished(&self, metrics: &Metrics, result: &SyncResult) {
        let Some(sha) = result.revision.as_deref() else {
            return;
        };
        let (state, description) = outcome(result);
        self.post(metrics, &result.application, sha, state, &description)
            .await;
    }

    async fn post(
        &self,
        metrics: &Metrics,
        application: &str,
        sha: &str,
        state: CommitState,
        description: &str,
    ) {
        if !self.posted.is_news(application, sha, state) {
            return;
        }
        let context = format!("relbot/{application}");
        let target = self.target_url(application);
        match self
            .client
            .create_commit_status(sha, state, &context, description, target.as_deref())
            .await
        {
            Ok(()) => {
                self.posted.remember(application, sha, state);
                metrics.commit_statuses.inc(&["posted"]);
            }
            Err(e) => {
                metrics.commit_statuses.inc(&["failed"]);
                tracing::warn!(
                    application,
                    revision = sha,
                    state = state.as_str(),
                    "could not set commit status {context}: {e}; the sync goes on"
                );
            }
        }
    }
}

/// The state and one line for a finished run: success when synced (or held
/// back on purpose) and Healthy; pending while it still rolls out; failure
/// when the cluster refused or
/// the application is Degraded; error when relbot could not judge (a plan
/// or render error, nothing applied).
pub fn outcome(result: &SyncResult) -> (CommitState, String) {
    let health = result.health.as_str();
    let summary = result.counts().summary();
    match result.phase {
        RunPhase::Failed
            if result
                .objects
                .iter()
                .all(|o| !matches!(o.outcome, crate::sync::result::Effect::Applied))
                && !result.errors.is_empty() =>
        {
            (
                CommitState::Error,
                format!("not applied: {}", result.errors.join("; ")),
            )
        }
        RunPhase::Failed => (
            CommitState::Failure,
            match result.errors.first() {
                Some(e) => format!("failed ({health}): {e}"),
                None => format!("failed ({health}): {summary}"),
            },
        ),
        _ if result.health == crate::cluster::health::HealthStatus::Degraded => (
            CommitState::Failure,
            format!("synced but Degraded: {summary}"),
        ),
        // Applied and still rolling out: the run that sees it settle
        // posts the verdict.
        _ if result.health == crate::cluster::health::HealthStatus::Progressing => (
            CommitState::Pending,
            format!("synced, rolling out: {summary}"),
        ),
        RunPhase::OutOfSync => (
            CommitState::Success,
            format!("synced, some changes held back ({health}): {summary}"),
        ),
        RunPhase::Synced => (CommitState::Success, format!("synced, {health}: {summary}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::health::HealthStatus;
    use crate::server::fixture::result_with;

    #[test]
    fn a_state_is_news_once_per_commit() {
        let posted = Posted::default();
        assert!(posted.is_news("web", "abc", CommitState::Success));
        posted.remember("web", "abc", CommitState::Success);
        assert!(!posted.is_news("web", "abc", CommitState::Success));
        assert!(posted.is_news("web", "abc", CommitState::Failure));
        assert!(posted.is_news("web", "def", CommitState::Success));
        assert!(posted.is_news("api", "abc", CommitState::Success));
    }

    #[test]
    fn a_rollout_is_pending_until_its_health_settles() {
        let state = |health| outcome(&result_with("web", "abc", RunPhase::Synced, health)).0;
        assert_eq!(state(HealthStatus::Progressing), CommitState::Pending);
        assert_eq!(state(HealthStatus::Healthy), CommitState::Success);
        assert_eq!(state(HealthStatus::Degraded), CommitState::Failure);
    }
}
