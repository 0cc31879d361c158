//! What a bump run is told and what it reports: per policy, the outcome,
//! the merge state and the pull request; for the run, the requests sent.
//! The CLI prints it, the server keeps it for the status page.

use serde::Serialize;

use super::plan::{BumpPlan, HeldTag};
use super::pull;
use super::rollback::RollbackDecision;
use crate::progress::Progress;

/// What a run may do.
#[derive(Debug, Clone, Default)]
pub struct BumpOptions {
    /// Only these policies (all when empty).
    pub only: Vec<String>,
    /// Scan and plan only: no git writes, no GitHub.
    pub dry_run: bool,
    /// Who hears how the run goes (nobody by default).
    pub progress: Progress,
}

/// What happened to one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum PolicyOutcome {
    /// Every reference already carries the newest allowed tag.
    UpToDate,
    /// Dry-run: this bump would be proposed.
    WouldBump,
    /// Dry-run: this revert would be proposed (see the report's `rollback`).
    WouldRevert,
    /// A newer tag exists, but a merged revert holds the policy at or below
    /// the version that failed: nothing proposed.
    HeldAfterRollback {
        failed: String,
        wanted: String,
    },
    /// A new PR was opened.
    Proposed {
        pr: u64,
        url: String,
    },
    /// The policy's open PR was force-pushed and/or edited in place.
    Updated {
        pr: u64,
        url: String,
    },
    /// The policy's open PR already proposes exactly this: nothing written.
    Unchanged {
        pr: u64,
        url: String,
    },
    /// A person closed the PR for this version; it stays closed.
    SkippedHumanClosed {
        pr: u64,
    },
    /// The PR for this version was merged already (the base is behind).
    AlreadyMerged {
        pr: u64,
    },
    Failed {
        error: String,
    },
}

/// What became of the merge request for a policy's PR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "merge", rename_all = "camelCase")]
pub enum MergeState {
    /// Auto-merge is off for this policy.
    Disabled,
    /// The application is Degraded: no merge requested.
    HeldDegraded {
        application: String,
    },
    /// GitHub's auto-merge was already on; nothing asked.
    AlreadyEnabled,
    AutoMergeEnabled,
    Merged {
        sha: String,
    },
    WaitingForChecks {
        pending: Vec<String>,
    },
    ChecksFailed {
        failing: Vec<String>,
    },
    Failed {
        error: String,
    },
}

/// One policy's line in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub policy: String,
    pub image: String,
    /// Tags in use by the references found.
    pub current: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bump: Option<BumpPlan>,
    pub outcome: PolicyOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeState>,
    /// Whether this run pushed the policy's branch.
    pub pushed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<String>,
    /// Tags in use left alone on purpose (`latest`), with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldTag>,
    /// What the rollback rule said (only when the application is Degraded
    /// after a merged bump). With `rollBack`, `bump` is the revert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackDecision>,
}

impl PolicyReport {
    /// Whether `bump` is a revert rather than a bump.
    pub fn is_revert(&self) -> bool {
        matches!(self.rollback, Some(RollbackDecision::RollBack(_))) && self.bump.is_some()
    }

    /// The title of the PR this line proposes.
    pub fn title(&self) -> Option<String> {
        let plan = self.bump.as_ref()?;
        Some(if self.is_revert() {
            pull::revert_title(plan)
        } else {
            pull::title(plan)
        })
    }
}

/// Requests sent during the run, per service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub registry_requests: u64,
    pub registry_token_requests: u64,
    pub registry_pages: u64,
    pub registry_not_modified: u64,
    pub github_requests: u64,
    pub git_pushes: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BumpReport {
    pub dry_run: bool,
    pub policies: Vec<PolicyReport>,
    pub requests: RequestCounts,
}

impl BumpReport {
    /// Policies with a bump found (dry-run) or published.
    pub fn bumps(&self) -> impl Iterator<Item = &PolicyReport> {
        self.policies.iter().filter(|p| p.bump.is_some())
    }

    pub fn failed(&self) -> bool {
        self.policies
            .iter()
            .any(|p| matches!(p.outcome, PolicyOutcome::Failed { .. }))
    }
}
