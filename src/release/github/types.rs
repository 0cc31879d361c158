//! The values the client hands back: small, owned, independent of GitHub's
//! (large, evolving) payloads, and the wire structs they are read from.

use serde::Deserialize;

pub use crate::config::MergeMethod;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Closed,
}

/// Which PRs a listing returns (`state=` on `GET /pulls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrStateFilter {
    Open,
    Closed,
    All,
}

impl PrStateFilter {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::All => "all",
        }
    }
}

/// What relbot needs to know about one pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestInfo {
    pub number: u64,
    /// GraphQL id, needed for `enablePullRequestAutoMerge`.
    pub node_id: String,
    pub state: PrState,
    pub merged: bool,
    /// When it was merged (RFC 3339, GitHub's clock).
    pub merged_at: Option<String>,
    /// The commit the merge made on the base branch.
    pub merge_commit_sha: Option<String>,
    pub title: String,
    pub body: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    pub user_login: String,
    pub html_url: String,
    pub auto_merge_enabled: bool,
    /// `clean`, `blocked`, `behind`, `unstable`, … (only on single-PR reads).
    pub mergeable_state: Option<String>,
}

/// A PR to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    pub title: String,
    pub body: String,
    /// Branch name in the same repository (`relbot/django-api`).
    pub head: String,
    pub base: String,
    pub labels: Vec<String>,
}

/// How `create_pull` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPull {
    pub pull: PullRequestInfo,
    /// GitHub answered "A pull request already exists": the open PR for the
    /// head was found and its title and body updated instead.
    pub reused_existing: bool,
}

/// The answer to `enablePullRequestAutoMerge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMergeOutcome {
    /// GitHub will merge once requirements are met.
    Enabled,
    /// Nothing blocks the PR, so GitHub refuses to *wait*: merge it directly.
    AlreadyClean,
    /// The repository does not allow auto-merge (or the base branch has no
    /// protection rules): merge ourselves once required checks pass.
    Unavailable,
    /// The PR's head is no longer the commit relbot pushed (`expectedHeadOid`
    /// refused): nothing was enabled; the next run re-reads the PR.
    HeadMoved,
}

/// A check the base branch's protection requires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequiredCheck {
    /// The status context or check run name.
    pub context: String,
    /// The GitHub App that must report it; `None` accepts any source.
    pub app_id: Option<u64>,
}

impl std::fmt::Display for RequiredCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.app_id {
            Some(app) => write!(f, "{} (from GitHub App {app})", self.context),
            None => write!(f, "{}", self.context),
        }
    }
}

/// The verdict over a commit's statuses and check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksState {
    Pending,
    Success,
    Failure,
}

/// The verdict plus the names behind it, for logs and PR comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksSummary {
    pub state: ChecksState,
    pub failing: Vec<String>,
    pub pending: Vec<String>,
}

/// The outcome of [`super::GitHubClient::request_merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    AutoMergeEnabled,
    Merged { sha: String },
    WaitingForChecks { pending: Vec<String> },
    ChecksFailed { failing: Vec<String> },
}

/// Repository facts relbot reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub default_branch: String,
    /// Only visible to tokens with admin rights; `None` when hidden.
    pub allow_auto_merge: Option<bool>,
}

// ---- wire shapes (only the fields relbot reads; GitHub sends many more) ----

#[derive(Debug, Deserialize)]
pub(crate) struct WirePull {
    pub number: u64,
    #[serde(default)]
    pub node_id: String,
    pub state: String,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    pub head: WireRef,
    pub base: WireRef,
    #[serde(default)]
    pub labels: Vec<WireLabel>,
    #[serde(default)]
    pub user: Option<WireUser>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub auto_merge: Option<serde_json::Value>,
    #[serde(default)]
    pub mergeable_state: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRef {
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireLabel {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireUser {
    pub login: String,
}

impl From<WirePull> for PullRequestInfo {
    fn from(w: WirePull) -> Self {
        // List endpoints omit `merged`; `merged_at` is on both.
        let merged = w.merged.unwrap_or(false) || w.merged_at.is_some();
        Self {
            number: w.number,
            node_id: w.node_id,
            state: if w.state == "open" {
                PrState::Open
            } else {
                PrState::Closed
            },
            merged,
            merged_at: w.merged_at,
            // GitHub also fills it for an open PR (a test merge): only a
            // merged PR's is a commit on the base branch.
            merge_commit_sha: w.merge_commit_sha.filter(|_| merged),
            title: w.title.unwrap_or_default(),
            body: w.body.unwrap_or_default(),
            head_ref: w.head.ref_name,
            head_sha: w.head.sha,
            base_ref: w.base.ref_name,
            labels: w.labels.into_iter().map(|l| l.name).collect(),
            user_login: w.user.map(|u| u.login).unwrap_or_default(),
            html_url: w.html_url.unwrap_or_default(),
            auto_merge_enabled: w.auto_merge.is_some_and(|v| !v.is_null()),
            mergeable_state: w.mergeable_state,
        }
    }
}
