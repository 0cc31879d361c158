//! One model of what the pages show, served as JSON (`/api/v1/…`) and
//! rendered as HTML, so scripts and people see the same figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::links::RepoLinks;
use super::store::AppDetail;
use crate::release::bump::MergeState;
use crate::server::status_page::{AppStatus, PendingPr, StatusSnapshot};
use crate::sync::result::{Effect, ObjectOutcome, SyncResult};
use crate::sync::status::RunRecord;

/// Objects written, unchanged, pruned and failed in the last run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub applied: usize,
    pub unchanged: usize,
    pub pruned: usize,
    pub failed: usize,
}

impl Counts {
    pub fn of(result: &SyncResult) -> Counts {
        let c = result.counts();
        Counts {
            applied: c.created + c.updated + c.recreated,
            unchanged: c.unchanged,
            pruned: c.pruned,
            failed: c.failed,
        }
    }
}

/// One row of the overview; also the head of an application's JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    pub name: String,
    pub revision: Option<String>,
    /// The commit on GitHub, when the repository is a GitHub one.
    pub revision_url: Option<String>,
    /// `Synced`, `OutOfSync`, `Failed` or `Unknown` (never synced yet).
    pub sync: String,
    pub health: String,
    pub last_run: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub counts: Option<Counts>,
    pub message: Option<String>,
    /// When the run under way started.
    pub running_since: Option<DateTime<Utc>>,
}

impl AppSummary {
    pub fn new(app: &AppStatus, detail: Option<&AppDetail>, links: &RepoLinks) -> AppSummary {
        let result = detail.and_then(|d| d.result.as_ref());
        AppSummary {
            name: app.name.clone(),
            revision: app.revision.clone(),
            revision_url: app.revision.as_deref().and_then(|r| links.commit(r)),
            sync: app.sync.clone(),
            health: app.health.clone(),
            last_run: app.last_run,
            duration_ms: result.map(|r| r.timings.total_ms),
            counts: result.map(Counts::of),
            message: app.message.clone(),
            running_since: detail.and_then(|d| d.running_since),
        }
    }
}

/// Where the update queue stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub running: bool,
    pub queued: bool,
    /// Triggers merged into a run already queued, since start.
    pub coalesced: u64,
    pub submitted: u64,
    pub runs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestView {
    pub policy: String,
    pub number: u64,
    pub title: String,
    pub url: String,
    /// `waiting for checks`, `auto-merge on`, `blocked: <app> is Degraded`…
    pub state: Option<String>,
}

/// A bump PR's merge state in a few words, for the pages.
pub fn merge_words(state: &MergeState) -> String {
    match state {
        MergeState::Disabled => "open (auto-merge off)".into(),
        MergeState::HeldDegraded { application } => {
            format!("blocked: {application} is Degraded")
        }
        MergeState::AlreadyEnabled | MergeState::AutoMergeEnabled => "auto-merge on".into(),
        MergeState::Merged { .. } => "merged".into(),
        MergeState::WaitingForChecks { pending } => {
            format!("waiting for checks ({})", pending.join(", "))
        }
        MergeState::ChecksFailed { failing } => format!("checks failed ({})", failing.join(", ")),
        MergeState::Failed { error } => format!("merge failed: {error}"),
    }
}

impl From<&PendingPr> for PullRequestView {
    fn from(pr: &PendingPr) -> Self {
        PullRequestView {
            policy: pr.policy.clone(),
            number: pr.number,
            title: pr.title.clone(),
            url: pr.url.clone(),
            state: pr.state.clone(),
        }
    }
}

/// What the process knows about itself at render time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub ready: bool,
    /// This replica runs updates.
    pub leader: bool,
    /// Who holds the Lease (this replica's name when it leads).
    pub leader_name: Option<String>,
    pub queue: QueueView,
    /// The local clock against each peer's (see `crate::clock`).
    pub clock: Vec<ClockView>,
}

/// The local clock against one peer's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    /// `apiserver`, `registry`, `github`.
    pub peer: String,
    /// Local minus the peer's: positive when the local clock is ahead.
    pub skew_seconds: f64,
    /// Beyond the 30 s bar: worth fixing.
    pub beyond_warning: bool,
    /// The figure in words.
    pub sentence: String,
}

impl ClockView {
    pub fn from_skew(skew: &crate::clock::Skew) -> ClockView {
        ClockView {
            peer: skew.peer.as_str().into(),
            skew_seconds: skew.seconds.round(),
            beyond_warning: skew.beyond_warning(),
            sentence: skew.sentence(),
        }
    }
}

/// `GET /api/v1/applications` and the overview page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub revision: Option<String>,
    pub revision_url: Option<String>,
    pub server: ServerView,
    pub applications: Vec<AppSummary>,
    pub pending_pull_requests: Vec<PullRequestView>,
}

impl Overview {
    pub fn new(
        snapshot: &StatusSnapshot,
        details: &BTreeMap<String, AppDetail>,
        links: &RepoLinks,
        server: ServerView,
    ) -> Overview {
        Overview {
            repository: snapshot.repository.clone(),
            branch: snapshot.branch.clone(),
            revision: snapshot.revision.clone(),
            revision_url: snapshot.revision.as_deref().and_then(|r| links.commit(r)),
            server,
            applications: snapshot
                .apps
                .iter()
                .map(|a| AppSummary::new(a, details.get(&a.name), links))
                .collect(),
            pending_pull_requests: snapshot.pending_prs.iter().map(Into::into).collect(),
        }
    }
}

/// One object of an application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    pub kind: String,
    pub group: String,
    pub namespace: Option<String>,
    pub name: String,
    /// `created`, `updated`, `re-created`, `pruned`, `unchanged`, `held`,
    /// `failed` or `not attempted`.
    pub outcome: String,
    /// Why it was held, failed or not attempted.
    pub outcome_detail: Option<String>,
    pub health: Option<String>,
    /// e.g. "0 of 2 updated replicas available".
    pub health_reason: Option<String>,
    /// `path/file.yaml:12` in the repository.
    pub source: Option<String>,
    pub source_url: Option<String>,
    /// What changed (Secret values redacted before it was computed).
    pub diff: Option<String>,
}

impl ObjectView {
    pub fn new(object: &ObjectOutcome, revision: Option<&str>, links: &RepoLinks) -> ObjectView {
        let (outcome, detail) = match &object.outcome {
            Effect::Applied => (object.action.past_tense(), None),
            Effect::Unchanged => ("unchanged", None),
            Effect::Held(why) => ("held", Some(why.clone())),
            Effect::Failed(why) => ("failed", Some(why.clone())),
            Effect::NotAttempted(why) => ("not attempted", Some(why.clone())),
        };
        ObjectView {
            kind: object.key.kind.clone(),
            group: object.key.group.clone(),
            namespace: object.key.namespace.clone(),
            name: object.key.name.clone(),
            outcome: outcome.into(),
            outcome_detail: detail,
            health: object.health.as_ref().map(|h| h.status.as_str().into()),
            health_reason: object
                .health
                .as_ref()
                .map(|h| h.message.clone())
                .filter(|m| !m.is_empty()),
            source: object.origin.as_ref().map(|o| o.to_string()),
            source_url: object.origin.as_ref().and_then(|o| {
                revision.and_then(|rev| links.file(rev, &o.file.to_string_lossy(), o.line))
            }),
            diff: object.diff.clone(),
        }
    }

    /// `namespace/name`, or the name of a cluster-scoped object.
    pub fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The filter group of this object's outcome.
    pub fn outcome_group(&self) -> &'static str {
        match self.outcome.as_str() {
            "unchanged" => "unchanged",
            "held" => "held",
            "failed" => "failed",
            "not attempted" => "not-attempted",
            _ => "changed",
        }
    }
}

/// Which objects a page or a script asked for (`?health=…&outcome=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ObjectFilter {
    #[serde(default)]
    pub health: Option<String>,
    /// `changed`, `unchanged`, `held`, `failed` or `not-attempted`.
    #[serde(default)]
    pub outcome: Option<String>,
}

impl ObjectFilter {
    fn wanted(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|v| !v.is_empty() && *v != "any")
    }

    pub fn admits(&self, object: &ObjectView) -> bool {
        Self::wanted(&self.health).is_none_or(|h| object.health.as_deref() == Some(h))
            && Self::wanted(&self.outcome).is_none_or(|o| object.outcome_group() == o)
    }

    pub fn is_active(&self) -> bool {
        Self::wanted(&self.health).is_some() || Self::wanted(&self.outcome).is_some()
    }
}

/// `GET /api/v1/applications/{name}` and the application page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPage {
    #[serde(flatten)]
    pub summary: AppSummary,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    /// Objects of the last run that pass the filter, in apply order.
    pub objects: Vec<ObjectView>,
    /// Objects of the last run before filtering.
    pub total_objects: usize,
    /// Newest first.
    pub runs: Vec<RunRecord>,
}

impl AppPage {
    pub fn new(
        app: &AppStatus,
        detail: Option<&AppDetail>,
        links: &RepoLinks,
        filter: &ObjectFilter,
    ) -> AppPage {
        let result = detail.and_then(|d| d.result.as_ref());
        let revision = result.and_then(|r| r.revision.as_deref());
        let all: Vec<ObjectView> = result
            .map(|r| {
                r.objects
                    .iter()
                    .map(|o| ObjectView::new(o, revision, links))
                    .collect()
            })
            .unwrap_or_default();
        let total_objects = all.len();
        AppPage {
            summary: AppSummary::new(app, detail, links),
            errors: result.map(|r| r.errors.clone()).unwrap_or_default(),
            notes: result.map(|r| r.notes.clone()).unwrap_or_default(),
            objects: all.into_iter().filter(|o| filter.admits(o)).collect(),
            total_objects,
            runs: detail
                .map(|d| d.runs.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }
}
