//! One result type for a dry-run and a sync of one application: what was
//! done (or would be done) to each object, and what stopped the run. The
//! full plan or result rides along for the reports.

use serde::Serialize;

use super::plan::{Action, Plan, Reason};
use super::result::{Effect, SyncResult};
use crate::manifest::ObjectKey;

/// What one application's run did (a sync) or would do (a dry-run).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSet {
    pub application: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub dry_run: bool,
    /// One entry per object, in the order of the plan (prunes last).
    pub entries: Vec<ChangeSetEntry>,
    /// What stopped the run, or would stop the sync: the plan's problems
    /// (each naming the object, its file:line and the server's words) first.
    pub errors: Vec<String>,
    /// The plan or the result in full, for the reports.
    #[serde(skip)]
    pub detail: Detail,
}

/// The full plan (dry-run) or result (sync) behind a [`ChangeSet`].
#[derive(Debug, Clone)]
pub enum Detail {
    Plan(Plan),
    Result(Box<SyncResult>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSetEntry {
    pub key: ObjectKey,
    pub action: Action,
    pub reason: Reason,
    /// What the sync did; absent in a dry-run, which does nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Effect>,
    /// Why the change is left alone (selfHeal off, prune protection…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Two change sets are equal when they did (or would do) the same to the
/// same objects and stopped for the same reasons; timings, request counts
/// and the health seen are the run's circumstances, not its changes.
impl PartialEq for ChangeSet {
    fn eq(&self, other: &Self) -> bool {
        self.application == other.application
            && self.revision == other.revision
            && self.dry_run == other.dry_run
            && self.entries == other.entries
            && self.errors == other.errors
    }
}

impl ChangeSet {
    /// A dry-run's answer: the plan, nothing done.
    pub fn planned(plan: Plan) -> Self {
        ChangeSet {
            application: plan.application.clone(),
            revision: plan.revision.clone(),
            dry_run: true,
            entries: plan
                .changes
                .iter()
                .map(|c| ChangeSetEntry {
                    key: c.key.clone(),
                    action: c.action,
                    reason: c.reason,
                    outcome: None,
                    held: c.held.clone(),
                    diff: c.diff.clone(),
                })
                .collect(),
            errors: plan.problems.iter().map(|p| p.to_string()).collect(),
            detail: Detail::Plan(plan),
        }
    }

    /// A sync's answer.
    pub fn synced(result: SyncResult) -> Self {
        ChangeSet {
            application: result.application.clone(),
            revision: result.revision.clone(),
            dry_run: false,
            entries: result
                .objects
                .iter()
                .map(|o| ChangeSetEntry {
                    key: o.key.clone(),
                    action: o.action,
                    reason: o.reason,
                    held: match &o.outcome {
                        Effect::Held(why) => Some(why.clone()),
                        _ => None,
                    },
                    outcome: Some(o.outcome.clone()),
                    diff: o.diff.clone(),
                })
                .collect(),
            errors: result.errors.clone(),
            detail: Detail::Result(Box::new(result)),
        }
    }

    /// The plan of a dry-run.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.detail {
            Detail::Plan(plan) => Some(plan),
            Detail::Result(_) => None,
        }
    }

    /// The result of a sync.
    pub fn result(&self) -> Option<&SyncResult> {
        match &self.detail {
            Detail::Result(result) => Some(result),
            Detail::Plan(_) => None,
        }
    }

    pub fn into_plan(self) -> Option<Plan> {
        match self.detail {
            Detail::Plan(plan) => Some(plan),
            Detail::Result(_) => None,
        }
    }

    pub fn into_result(self) -> Option<SyncResult> {
        match self.detail {
            Detail::Result(result) => Some(*result),
            Detail::Plan(_) => None,
        }
    }

    /// How many objects the sync wrote (created, updated, re-created or
    /// pruned); none for a dry-run.
    pub fn written(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.outcome == Some(Effect::Applied))
            .count()
    }
}
