//! What can ask for an update, and how requests that arrive while one runs
//! merge into the next run (union of what they name, latest revision wins).

use std::collections::BTreeSet;
use std::fmt;

/// A set of names (applications, policies) or pull-request numbers, where
/// `All` absorbs any `Only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector<T: Ord> {
    All,
    Only(BTreeSet<T>),
}

/// Which applications a sync covers.
pub type AppSelector = Selector<String>;
/// Which ImagePolicies a bump covers.
pub type PolicySelector = Selector<String>;
/// Which pull requests an auto-merge continuation looks at.
pub type PrSelector = Selector<u64>;

impl<T: Ord> Selector<T> {
    pub fn only(items: impl IntoIterator<Item = T>) -> Self {
        Selector::Only(items.into_iter().collect())
    }

    pub fn contains(&self, item: &T) -> bool {
        match self {
            Selector::All => true,
            Selector::Only(set) => set.contains(item),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Selector::All)
    }

    /// True for `Only` with nothing in it: such a trigger asks for nothing.
    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Only(set) if set.is_empty())
    }

    /// Union in place; `All` absorbs everything.
    pub fn merge(&mut self, other: Selector<T>) {
        match (&mut *self, other) {
            (Selector::All, _) => {}
            (this, Selector::All) => *this = Selector::All,
            (Selector::Only(mine), Selector::Only(theirs)) => mine.extend(theirs),
        }
    }
}

impl<T: Ord + fmt::Display> fmt::Display for Selector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all"),
            Selector::Only(set) => {
                let names: Vec<String> = set.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// One request for work. Triggers never run directly: they go through the
/// [`UpdateQueue`](super::queue::UpdateQueue), which merges them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Make these applications match git at `revision` (None: the branch head).
    Sync {
        apps: AppSelector,
        revision: Option<String>,
        reason: String,
    },
    /// Look for newer tags for these policies and open/update bump PRs.
    Bump {
        policies: PolicySelector,
        reason: String,
    },
    /// Checks or reviews changed: see whether pending auto-merges can proceed.
    ContinueMerge { prs: PrSelector, reason: String },
}

impl Trigger {
    pub fn sync_all(reason: impl Into<String>) -> Self {
        Trigger::Sync {
            apps: Selector::All,
            revision: None,
            reason: reason.into(),
        }
    }

    pub fn bump_all(reason: impl Into<String>) -> Self {
        Trigger::Bump {
            policies: Selector::All,
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Trigger::Sync { reason, .. }
            | Trigger::Bump { reason, .. }
            | Trigger::ContinueMerge { reason, .. } => reason,
        }
    }

    /// Short, fixed label for metrics (never user data).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Sync { .. } => "sync",
            Trigger::Bump { .. } => "bump",
            Trigger::ContinueMerge { .. } => "continue_merge",
        }
    }

    /// A trigger that names nothing (e.g. a push that touched no application).
    pub fn is_empty(&self) -> bool {
        match self {
            Trigger::Sync { apps, .. } => apps.is_empty(),
            Trigger::Bump { policies, .. } => policies.is_empty(),
            Trigger::ContinueMerge { prs, .. } => prs.is_empty(),
        }
    }
}

/// The sync part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub apps: AppSelector,
    /// Latest revision named by any merged trigger; None means the branch head.
    pub revision: Option<String>,
}

/// Everything one run does: the merge of every trigger submitted since the
/// previous run started. Ticket numbers are handed out in submission order
/// and a run covers a contiguous range of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub sync: Option<SyncRequest>,
    pub bump: Option<PolicySelector>,
    pub continue_merge: Option<PrSelector>,
    /// Distinct reasons, in arrival order (bounded; for logs and the status page).
    pub reasons: Vec<String>,
    /// Tickets covered: `first_ticket..=last_ticket`.
    pub first_ticket: u64,
    pub last_ticket: u64,
}

/// Reasons kept per run; the rest are only counted.
const MAX_REASONS: usize = 16;

impl Work {
    pub fn new(ticket: u64, trigger: Trigger) -> Self {
        let mut work = Work {
            sync: None,
            bump: None,
            continue_merge: None,
            reasons: Vec::new(),
            first_ticket: ticket,
            last_ticket: ticket,
        };
        work.absorb(ticket, trigger);
        work
    }

    /// Merges a later trigger into this pending run.
    pub fn absorb(&mut self, ticket: u64, trigger: Trigger) {
        self.last_ticket = self.last_ticket.max(ticket);
        let reason = trigger.reason().to_string();
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
        match trigger {
            Trigger::Sync { apps, revision, .. } => match &mut self.sync {
                Some(pending) => {
                    pending.apps.merge(apps);
                    // Latest revision wins; a trigger without one (a poll)
                    // does not erase a revision a push named.
                    if revision.is_some() {
                        pending.revision = revision;
                    }
                }
                None => self.sync = Some(SyncRequest { apps, revision }),
            },
            Trigger::Bump { policies, .. } => merge_into(&mut self.bump, policies),
            Trigger::ContinueMerge { prs, .. } => merge_into(&mut self.continue_merge, prs),
        }
    }

    /// Merges another pending run (e.g. one abandoned when leadership was
    /// lost) so that nothing it asked for is lost.
    pub fn absorb_work(&mut self, older: Work) {
        self.first_ticket = self.first_ticket.min(older.first_ticket);
        self.last_ticket = self.last_ticket.max(older.last_ticket);
        if let Some(sync) = older.sync {
            match &mut self.sync {
                // The newer run's revision (if any) is the later one.
                Some(pending) => {
                    pending.apps.merge(sync.apps);
                    if pending.revision.is_none() {
                        pending.revision = sync.revision;
                    }
                }
                None => self.sync = Some(sync),
            }
        }
        if let Some(bump) = older.bump {
            merge_into(&mut self.bump, bump);
        }
        if let Some(prs) = older.continue_merge {
            merge_into(&mut self.continue_merge, prs);
        }
        for reason in older.reasons {
            if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
                self.reasons.push(reason);
            }
        }
    }
}

fn merge_into<T: Ord>(slot: &mut Option<Selector<T>>, selector: Selector<T>) {
    match slot {
        Some(existing) => existing.merge(selector),
        None => *slot = Some(selector),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(apps: &[&str], revision: Option<&str>) -> Trigger {
        Trigger::Sync {
            apps: Selector::only(apps.iter().map(|s| s.to_string())),
            revision: revision.map(str::to_string),
            reason: "test".into(),
        }
    }

    #[test]
    fn selectors_union_and_all_absorbs() {
        let mut s = Selector::only(["a".to_string()]);
        s.merge(Selector::only(["b".to_string()]));
        assert_eq!(s, Selector::only(["a".to_string(), "b".to_string()]));
        s.merge(Selector::All);
        assert!(s.is_all());
        s.merge(Selector::only(["c".to_string()]));
        assert!(s.is_all());
    }

    #[test]
    fn latest_revision_wins_and_poll_keeps_it() {
        let mut work = Work::new(1, sync(&["a"], Some("r1")));
        work.absorb(2, sync(&["b"], Some("r2")));
        work.absorb(3, Trigger::sync_all("poll"));
        let s = work.sync.unwrap();
        assert!(s.apps.is_all());
        assert_eq!(s.revision.as_deref(), Some("r2"));
        assert_eq!((work.first_ticket, work.last_ticket), (1, 3));
    }

    #[test]
    fn kinds_merge_independently() {
        let mut work = Work::new(
            1,
            Trigger::Bump {
                policies: Selector::only(["p".to_string()]),
                reason: "r".into(),
            },
        );
        work.absorb(
            2,
            Trigger::ContinueMerge {
                prs: Selector::only([7]),
                reason: "c".into(),
            },
        );
        work.absorb(
            3,
            Trigger::Bump {
                policies: Selector::only(["q".to_string()]),
                reason: "r".into(),
            },
        );
        assert!(work.sync.is_none());
        assert_eq!(
            work.bump,
            Some(Selector::only(["p".to_string(), "q".to_string()]))
        );
        assert_eq!(work.continue_merge, Some(Selector::only([7])));
        assert_eq!(work.reasons, vec!["r".to_string(), "c".to_string()]);
    }

    #[test]
    fn absorbing_an_abandoned_run_keeps_newer_revision() {
        let old = Work::new(1, sync(&["a"], Some("old")));
        let mut new = Work::new(5, sync(&["b"], Some("new")));
        new.absorb_work(old);
        let s = new.sync.unwrap();
        assert_eq!(s.revision.as_deref(), Some("new"));
        assert!(s.apps.contains(&"a".to_string()) && s.apps.contains(&"b".to_string()));
        assert_eq!((new.first_ticket, new.last_ticket), (1, 5));
    }
}
