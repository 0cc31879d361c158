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
        /// What the sender announced (a registry webhook: the tags pushed).
        news: News,
        reason: String,
    },
    /// Checks or reviews changed: see whether pending auto-merges can proceed.
    ContinueMerge { prs: PrSelector, reason: String },
}

/// What a bump trigger announces. A registry webhook names the tags pushed;
/// once a bump run has seen those tags, more webhooks for them (the same
/// push delivered 50 times, to any replica) carry no news and start no run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum News {
    /// Nothing said (a schedule, a dispatch, a rollback check): always run.
    #[default]
    Unknown,
    /// These tags were pushed for the trigger's policies.
    Tags(BTreeSet<String>),
}

impl News {
    pub fn tags(tags: impl IntoIterator<Item = String>) -> Self {
        let tags: BTreeSet<String> = tags.into_iter().filter(|t| !t.is_empty()).collect();
        if tags.is_empty() {
            News::Unknown
        } else {
            News::Tags(tags)
        }
    }
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
            news: News::Unknown,
            reason: reason.into(),
        }
    }

    /// A bump of `policies` announcing nothing in particular.
    pub fn bump(policies: PolicySelector, reason: impl Into<String>) -> Self {
        Trigger::Bump {
            policies,
            news: News::Unknown,
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
    /// The (policy, tag) pairs the bump triggers announced; None when any
    /// of them announced nothing in particular (then the bump always runs).
    pub bump_news: Option<BTreeSet<(String, String)>>,
    /// Bump triggers merged into `bump`.
    pub bump_triggers: u64,
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
            bump_news: None,
            bump_triggers: 0,
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
            Trigger::Bump { policies, news, .. } => {
                let pairs = announced(&policies, news);
                self.merge_bump(policies, pairs, 1);
            }
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
            self.merge_bump(bump, older.bump_news, older.bump_triggers);
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

impl Work {
    fn merge_bump(
        &mut self,
        policies: PolicySelector,
        news: Option<BTreeSet<(String, String)>>,
        triggers: u64,
    ) {
        self.bump_news = match (self.bump.is_some(), self.bump_news.take(), news) {
            (false, _, news) => news,
            (true, Some(mut mine), Some(theirs)) => {
                mine.extend(theirs);
                Some(mine)
            }
            // Something announced nothing in particular: the bump runs.
            (true, _, _) => None,
        };
        self.bump_triggers += triggers;
        merge_into(&mut self.bump, policies);
    }

    /// Drops the bump part when every (policy, tag) its triggers announced
    /// was already seen (`seen`) by a finished run; returns the number of
    /// triggers dropped.
    pub fn drop_bump_without_news(&mut self, seen: impl Fn(&str, &str) -> bool) -> u64 {
        let Some(news) = &self.bump_news else {
            return 0;
        };
        if self.bump.is_none() || news.is_empty() || !news.iter().all(|(p, t)| seen(p, t)) {
            return 0;
        }
        self.bump = None;
        self.bump_news = None;
        std::mem::take(&mut self.bump_triggers)
    }

    /// Nothing left to run.
    pub fn is_idle(&self) -> bool {
        self.sync.is_none() && self.bump.is_none() && self.continue_merge.is_none()
    }
}

/// The (policy, tag) pairs a bump trigger announced; None for a trigger
/// without tags or for every policy.
fn announced(policies: &PolicySelector, news: News) -> Option<BTreeSet<(String, String)>> {
    let (Selector::Only(policies), News::Tags(tags)) = (policies, news) else {
        return None;
    };
    Some(
        policies
            .iter()
            .flat_map(|p| tags.iter().map(move |t| (p.clone(), t.clone())))
            .collect(),
    )
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
        let mut work = Work::new(1, Trigger::bump(Selector::only(["p".to_string()]), "r"));
        work.absorb(
            2,
            Trigger::ContinueMerge {
                prs: Selector::only([7]),
                reason: "c".into(),
            },
        );
        work.absorb(3, Trigger::bump(Selector::only(["q".to_string()]), "r"));
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

    fn pushed(policy: &str, tags: &[&str]) -> Trigger {
        Trigger::Bump {
            policies: Selector::only([policy.to_string()]),
            news: News::tags(tags.iter().map(|t| t.to_string())),
            reason: "registry notification".into(),
        }
    }

    #[test]
    fn bumps_announcing_only_seen_tags_are_dropped() {
        let seen = |policy: &str, tag: &str| policy == "web" && tag == "1.1.0";
        let mut work = Work::new(1, pushed("web", &["1.1.0"]));
        for ticket in 2..=50 {
            work.absorb(ticket, pushed("web", &["1.1.0"]));
        }
        assert_eq!(work.bump_triggers, 50);
        assert_eq!(work.drop_bump_without_news(seen), 50);
        assert!(work.bump.is_none() && work.is_idle());

        // One new tag among them is news: the bump stays.
        let mut work = Work::new(1, pushed("web", &["1.1.0"]));
        work.absorb(2, pushed("web", &["1.2.0"]));
        assert_eq!(work.drop_bump_without_news(seen), 0);
        assert!(work.bump.is_some());

        // A trigger that names no tag (a schedule) always runs.
        let mut work = Work::new(1, pushed("web", &["1.1.0"]));
        work.absorb(
            2,
            Trigger::bump(Selector::only(["web".to_string()]), "schedule"),
        );
        assert_eq!(work.drop_bump_without_news(seen), 0);
        let mut work = Work::new(1, Trigger::bump_all("schedule"));
        work.absorb(2, pushed("web", &["1.1.0"]));
        assert_eq!(work.drop_bump_without_news(seen), 0);

        // A sync merged with old news still runs, without the bump.
        let mut work = Work::new(1, sync(&["a"], None));
        work.absorb(2, pushed("web", &["1.1.0"]));
        assert_eq!(work.drop_bump_without_news(seen), 1);
        assert!(work.sync.is_some() && !work.is_idle());
    }

    #[test]
    fn an_abandoned_runs_news_is_kept() {
        let old = Work::new(1, pushed("web", &["1.2.0"]));
        let mut new = Work::new(5, pushed("web", &["1.1.0"]));
        new.absorb_work(old);
        assert_eq!(new.bump_triggers, 2);
        let seen = |_: &str, tag: &str| tag == "1.1.0";
        assert_eq!(new.drop_bump_without_news(seen), 0, "1.2.0 was not seen");
    }
}
