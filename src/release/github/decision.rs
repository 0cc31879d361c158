//! What to do with a policy's pull requests when the policy wants a version:
//! a pure function over the PRs GitHub already holds, so the rules can be
//! tested exhaustively without a network.
//!
//! Every relbot PR body carries a machine-readable marker,
//! `<!-- relbot: policy=django-api version=0.0.18 -->`. When relbot closes a
//! PR itself (superseded), it rewrites the marker with `superseded=true`, which
//! is how a PR a human closed is told apart from one relbot closed.
//!
//! A bump's marker also names the tags it replaced (`from=0.0.17`), which is
//! what a rollback reverts to; a revert PR's marker names the version it
//! undoes (`rollback-of=0.0.18`). A revert is "the same PR" as another revert
//! of the same version, never as a bump, so the rules below apply to each
//! kind apart ([`decide`], [`decide_revert`]).
//!
//! The rules, in order:
//! 1. A closed, unmerged PR for the wanted version that relbot did not close
//!    was closed by a human: skip, and touch nothing (it is not reopened and
//!    no new PR is opened for that version).
//! 2. The *keeper* is the open PR on the policy's branch (`relbot/<policy>`)
//!    against the configured base (highest number if GitHub ever holds more).
//!    It is updated in place — branch force-pushed, title and body edited —
//!    whatever version it carried, so a newer tag updates the same PR.
//! 3. Without a keeper, a PR already merged for the wanted version means the
//!    bump landed (the checkout is just behind): skip. Otherwise create one.
//! 4. Every other open PR for the policy (another base, a legacy branch name,
//!    an unmarked duplicate) is superseded: closed with a comment naming the
//!    PR that replaces it. Hence never two open PRs for one policy.

use std::cmp::Ordering;

use super::types::{PrState, PullRequestInfo};

/// The branch every bump PR for `policy` is pushed to.
pub fn branch_for_policy(policy: &str) -> String {
    format!("relbot/{policy}")
}

/// The identity relbot writes into (and reads back from) a PR body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrMarker {
    pub policy: String,
    pub version: String,
    /// The tags in use the PR replaces (bumps; empty in older PRs).
    pub from: Vec<String>,
    /// On a revert PR: the version it undoes.
    pub rollback_of: Option<String>,
    /// Set when relbot itself closed the PR because another replaced it.
    pub superseded: bool,
}

const MARKER_OPEN: &str = "<!-- relbot:";
const MARKER_CLOSE: &str = "-->";

impl PrMarker {
    pub fn new(policy: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            policy: policy.into(),
            version: version.into(),
            from: Vec::new(),
            rollback_of: None,
            superseded: false,
        }
    }

    /// A bump's marker, naming the tags it replaces.
    pub fn bump(policy: &str, version: &str, from: &[String]) -> Self {
        Self {
            from: from.to_vec(),
            ..Self::new(policy, version)
        }
    }

    /// A revert's marker: back to `version`, undoing `failed`.
    pub fn revert(policy: &str, version: &str, failed: &str) -> Self {
        Self {
            rollback_of: Some(failed.to_string()),
            ..Self::new(policy, version)
        }
    }

    /// The HTML comment to embed in a PR body (invisible when rendered).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{MARKER_OPEN} policy={} version={}",
            self.policy, self.version
        );
        // Tags never hold spaces or commas, so the list reads back whole.
        if !self.from.is_empty() {
            out.push_str(&format!(" from={}", self.from.join(",")));
        }
        if let Some(failed) = &self.rollback_of {
            out.push_str(&format!(" rollback-of={failed}"));
        }
        if self.superseded {
            out.push_str(" superseded=true");
        }
        out.push(' ');
        out.push_str(MARKER_CLOSE);
        out
    }

    /// The first relbot marker in `body`, if any.
    pub fn parse(body: &str) -> Option<Self> {
        let start = body.find(MARKER_OPEN)? + MARKER_OPEN.len();
        let len = body[start..].find(MARKER_CLOSE)?;
        let (mut policy, mut version, mut superseded) = (None, None, false);
        let (mut from, mut rollback_of) = (Vec::new(), None);
        for pair in body[start..start + len].split_whitespace() {
            match pair.split_once('=') {
                Some(("policy", v)) => policy = Some(v.to_string()),
                Some(("version", v)) => version = Some(v.to_string()),
                Some(("from", v)) => {
                    from = v
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect()
                }
                Some(("rollback-of", v)) => rollback_of = Some(v.to_string()),
                Some(("superseded", v)) => superseded = v == "true",
                _ => {}
            }
        }
        Some(Self {
            policy: policy?,
            version: version?,
            from,
            rollback_of,
            superseded,
        })
    }

    /// `body` with its marker replaced by this one (appended if it had none).
    pub fn replace_in(&self, body: &str) -> String {
        if let Some(start) = body.find(MARKER_OPEN)
            && let Some(len) = body[start..].find(MARKER_CLOSE)
        {
            let end = start + len + MARKER_CLOSE.len();
            return format!("{}{}{}", &body[..start], self.render(), &body[end..]);
        }
        if body.is_empty() {
            self.render()
        } else {
            format!("{body}\n\n{}", self.render())
        }
    }
}

/// The main action for the policy's PR this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrAction {
    /// No PR to reuse: push the branch and open one.
    Create,
    /// Force-push the branch and edit this PR's title and body.
    UpdateInPlace {
        number: u64,
        /// The version the PR carried before (None when it had no marker).
        previous_version: Option<String>,
    },
    /// A human closed the PR for this very version: leave it closed.
    SkipHumanClosed { number: u64 },
    /// The bump for this version was merged already.
    SkipAlreadyMerged { number: u64 },
}

/// The whole decision: one action plus the PRs to close as superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrPlan {
    pub action: PrAction,
    /// Open PRs for the same policy to close with a comment, lowest first.
    pub supersede: Vec<u64>,
}

/// Decides what to do for `policy` wanting `version`, given every PR that may
/// belong to it (open and closed; those on other branches without this
/// policy's marker are ignored). `base` is the branch bump PRs target.
pub fn decide(policy: &str, version: &str, base: &str, pulls: &[PullRequestInfo]) -> PrPlan {
    decide_for(policy, base, pulls, |m| {
        m.rollback_of.is_none() && same_version(&m.version, version)
    })
}

/// [`decide`] for a revert of `failed`: the same rules, where "the same PR"
/// is a revert of the same version. A revert uses the policy's branch, so
/// it replaces an open bump PR for the policy (one open PR per policy).
pub fn decide_revert(policy: &str, failed: &str, base: &str, pulls: &[PullRequestInfo]) -> PrPlan {
    decide_for(policy, base, pulls, |m| {
        m.rollback_of
            .as_deref()
            .is_some_and(|of| same_version(of, failed))
    })
}

fn decide_for(
    policy: &str,
    base: &str,
    pulls: &[PullRequestInfo],
    wanted: impl Fn(&PrMarker) -> bool,
) -> PrPlan {
    let branch = branch_for_policy(policy);
    let ours: Vec<(&PullRequestInfo, Option<PrMarker>)> = pulls
        .iter()
        .filter_map(|pr| {
            let marker = PrMarker::parse(&pr.body).filter(|m| m.policy == policy);
            // A marker for another policy means the PR is not ours, even on our branch.
            let foreign = PrMarker::parse(&pr.body).is_some() && marker.is_none();
            (!foreign && (marker.is_some() || pr.head_ref == branch)).then_some((pr, marker))
        })
        .collect();

    let same_version = |m: &Option<PrMarker>| m.as_ref().is_some_and(&wanted);
    let newest = |a: &&(&PullRequestInfo, Option<PrMarker>),
                  b: &&(&PullRequestInfo, Option<PrMarker>)| {
        a.0.number.cmp(&b.0.number)
    };

    if let Some((pr, _)) = ours
        .iter()
        .filter(|(pr, m)| pr.state == PrState::Closed && !pr.merged && same_version(m))
        .filter(|(_, m)| !m.as_ref().is_some_and(|m| m.superseded))
        .max_by(newest)
    {
        return PrPlan {
            action: PrAction::SkipHumanClosed { number: pr.number },
            supersede: vec![],
        };
    }

    let keeper = ours
        .iter()
        .filter(|(pr, _)| pr.state == PrState::Open && pr.head_ref == branch && pr.base_ref == base)
        .max_by(newest);
    let action = match keeper {
        Some((pr, marker)) => PrAction::UpdateInPlace {
            number: pr.number,
            previous_version: marker.as_ref().map(|m| m.version.clone()),
        },
        None => match ours
            .iter()
            .filter(|(pr, m)| pr.merged && same_version(m))
            .max_by(newest)
        {
            Some((pr, _)) => {
                return PrPlan {
                    action: PrAction::SkipAlreadyMerged { number: pr.number },
                    supersede: vec![],
                };
            }
            None => PrAction::Create,
        },
    };
    let keeper_number = keeper.map(|(pr, _)| pr.number);
    let mut supersede: Vec<u64> = ours
        .iter()
        .filter(|(pr, _)| pr.state == PrState::Open && Some(pr.number) != keeper_number)
        .map(|(pr, _)| pr.number)
        .collect();
    supersede.sort_unstable();
    supersede.dedup();
    PrPlan { action, supersede }
}

/// Versions compare as semver when both parse (so `v1.2.0` equals `1.2.0`
/// and build metadata is ignored), else as exact strings.
pub fn same_version(a: &str, b: &str) -> bool {
    let parse = |s: &str| semver::Version::parse(s.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y) == Ordering::Equal,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open PR from relbot's branch for the policy into `base`.
    fn open(number: u64, base: &str, body: &str) -> PullRequestInfo {
        PullRequestInfo {
            number,
            node_id: format!("PR_{number}"),
            state: PrState::Open,
            merged: false,
            merged_at: None,
            merge_commit_sha: None,
            title: format!("PR {number}"),
            body: body.to_string(),
            head_ref: B.to_string(),
            head_sha: "0".repeat(40),
            base_ref: base.to_string(),
            labels: vec![],
            user_login: "relbot[bot]".into(),
            html_url: String::new(),
            auto_merge_enabled: false,
            mergeable_state: None,
        }
    }

    /// The same, closed without merging.
    fn closed(number: u64, base: &str, body: &str) -> PullRequestInfo {
        PullRequestInfo {
            state: PrState::Closed,
            ..open(number, base, body)
        }
    }

    /// The same, merged.
    fn merged(number: u64, base: &str, body: &str) -> PullRequestInfo {
        PullRequestInfo {
            merged: true,
            ..closed(number, base, body)
        }
    }

    /// `pr` from another branch.
    fn from_branch(head: &str, pr: PullRequestInfo) -> PullRequestInfo {
        PullRequestInfo {
            head_ref: head.to_string(),
            ..pr
        }
    }

    fn marker(policy: &str, version: &str) -> String {
        format!("Bump.\n\n{}", PrMarker::new(policy, version).render())
    }

    fn superseded(policy: &str, version: &str) -> String {
        PrMarker {
            superseded: true,
            ..PrMarker::new(policy, version)
        }
        .render()
    }

    const B: &str = "relbot/django-api";

    /// The plan for a bump of `django-api` to 0.0.18 on `main`.
    fn decide_0_0_18(prs: &[PullRequestInfo]) -> PrPlan {
        decide("django-api", "0.0.18", "main", prs)
    }

    fn update(number: u64, previous_version: Option<&str>) -> PrAction {
        PrAction::UpdateInPlace {
            number,
            previous_version: previous_version.map(str::to_string),
        }
    }

    /// `action`, superseding nothing.
    fn alone(action: PrAction) -> PrPlan {
        PrPlan {
            action,
            supersede: vec![],
        }
    }

    #[test]
    fn marker_round_trips_and_replaces() {
        let m = PrMarker::new("django-api", "0.0.18");
        assert_eq!(
            m.render(),
            "<!-- relbot: policy=django-api version=0.0.18 -->"
        );
        assert_eq!(
            PrMarker::parse(&format!("text\n{}\nmore", m.render())),
            Some(m.clone())
        );
        let s = PrMarker {
            superseded: true,
            ..m.clone()
        };
        assert_eq!(PrMarker::parse(&s.render()), Some(s.clone()));
        let replaced = s.replace_in(&format!("head\n{}\ntail", m.render()));
        assert_eq!(replaced, format!("head\n{}\ntail", s.render()));
        assert_eq!(m.replace_in(""), m.render());
        assert_eq!(m.replace_in("body"), format!("body\n\n{}", m.render()));
    }

    #[test]
    fn marker_missing_fields_or_unterminated_is_none() {
        assert_eq!(PrMarker::parse("no marker"), None);
        assert_eq!(PrMarker::parse("<!-- relbot: policy=x -->"), None);
        assert_eq!(PrMarker::parse("<!-- relbot: version=1 -->"), None);
        assert_eq!(PrMarker::parse("<!-- relbot: policy=x version=1"), None);
    }

    #[test]
    fn no_prs_creates() {
        let plan = decide_0_0_18(&[]);
        assert_eq!(plan, alone(PrAction::Create));
    }

    #[test]
    fn open_pr_same_version_is_updated_in_place() {
        let prs = [open(4, "main", &marker("django-api", "0.0.18"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(4, Some("0.0.18")));
        assert!(plan.supersede.is_empty());
    }

    #[test]
    fn newer_version_updates_the_same_open_pr() {
        let prs = [open(4, "main", &marker("django-api", "0.0.17"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(4, Some("0.0.17")));
    }

    #[test]
    fn unmarked_open_pr_on_our_branch_is_reused() {
        let prs = [open(2, "main", "hand-written")];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(2, None));
    }

    #[test]
    fn human_closed_same_version_is_not_reopened_or_recreated() {
        let prs = [closed(4, "main", &marker("django-api", "0.0.18"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan, alone(PrAction::SkipHumanClosed { number: 4 }));
    }

    #[test]
    fn human_closed_same_version_wins_over_open_older_pr() {
        let prs = [
            closed(4, "main", &marker("django-api", "v0.0.18")),
            open(5, "release", &marker("django-api", "0.0.17")),
        ];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan, alone(PrAction::SkipHumanClosed { number: 4 }));
    }

    #[test]
    fn human_closed_older_version_does_not_block_a_newer_one() {
        let prs = [closed(4, "main", &marker("django-api", "0.0.17"))];
        assert_eq!(decide_0_0_18(&prs).action, PrAction::Create);
    }

    #[test]
    fn relbot_superseded_same_version_does_not_block() {
        let prs = [closed(4, "main", &superseded("django-api", "0.0.18"))];
        assert_eq!(decide_0_0_18(&prs).action, PrAction::Create);
    }

    #[test]
    fn merged_same_version_without_open_pr_is_skipped() {
        let prs = [merged(7, "main", &marker("django-api", "0.0.18"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, PrAction::SkipAlreadyMerged { number: 7 });
    }

    #[test]
    fn merged_older_version_creates_a_new_pr() {
        let prs = [merged(7, "main", &marker("django-api", "0.0.17"))];
        assert_eq!(decide_0_0_18(&prs).action, PrAction::Create);
    }

    #[test]
    fn open_prs_on_other_bases_or_branches_are_superseded() {
        let prs = [
            open(3, "release", &marker("django-api", "0.0.16")),
            from_branch(
                "renovate/django",
                open(5, "main", &marker("django-api", "0.0.17")),
            ),
            open(6, "main", &marker("django-api", "0.0.17")),
        ];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(6, Some("0.0.17")));
        assert_eq!(plan.supersede, vec![3, 5]);
    }

    #[test]
    fn without_a_keeper_all_open_prs_are_superseded_by_the_new_one() {
        let prs = [open(3, "release", &marker("django-api", "0.0.16"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(
            plan,
            PrPlan {
                action: PrAction::Create,
                supersede: vec![3]
            }
        );
    }

    #[test]
    fn duplicate_keepers_keep_the_newest() {
        let prs = [
            open(8, "main", &marker("django-api", "0.0.17")),
            open(9, "main", &marker("django-api", "0.0.17")),
        ];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(9, Some("0.0.17")));
        assert_eq!(plan.supersede, vec![8]);
    }

    #[test]
    fn other_policies_prs_are_ignored() {
        let prs = [
            from_branch("relbot/other", open(1, "main", &marker("other", "1.0.0"))),
            from_branch(
                "relbot/other",
                closed(2, "main", &marker("other", "0.0.18")),
            ),
            // A foreign marker on our branch name is still not ours.
            open(3, "main", &marker("other", "0.0.18")),
        ];
        assert_eq!(decide_0_0_18(&prs), alone(PrAction::Create));
    }

    #[test]
    fn open_pr_for_a_newer_version_is_brought_back_to_the_wanted_one() {
        let prs = [open(4, "main", &marker("django-api", "0.0.19"))];
        let plan = decide_0_0_18(&prs);
        assert_eq!(plan.action, update(4, Some("0.0.19")));
    }

    #[test]
    fn non_semver_versions_compare_exactly() {
        assert!(same_version("2024-01-02", "2024-01-02"));
        assert!(!same_version("2024-01-02", "2024-01-03"));
        assert!(same_version("v1.2.3", "1.2.3"));
        assert!(same_version("1.2.3+build.1", "1.2.3"));
        assert!(!same_version("1.2.3-rc.1", "1.2.3"));
    }

    #[test]
    fn branch_name_is_deterministic() {
        assert_eq!(branch_for_policy("django-api"), "relbot/django-api");
    }
}
