//! Rollback and hold: what relbot does about a bump it proposed that broke
//! its application. Pure functions over what GitHub and the reconciler's
//! stored status already hold (times are passed in), so the rules are
//! tested without a network or a clock; nothing is stored anywhere else.
//!
//! - **Rollback**: the newest merged PR for a policy is a relbot bump to
//!   `F`, the files still use `F`, the application has synced a revision
//!   holding that merge, and it has been Degraded without a break since
//!   the later of the merge and the moment it turned Degraded, for longer
//!   than `spec.rollback.gracePeriod`: relbot opens a revert PR back to the
//!   tag the bump replaced.
//! - **Hold**: a merged revert PR records the failed version in its marker
//!   (`rollback-of=F`). While it is the newest such revert, the policy
//!   proposes nothing at or below `F`; the first tag newer than `F` lifts
//!   the hold by itself (it is simply allowed again).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::health::{AppObservation, UnhealthyObject};
use crate::cluster::health::HealthStatus;
use crate::config::RollbackSettings;
use crate::release::github::{PrMarker, PullRequestInfo, same_version};

/// A merged relbot bump, as its PR tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedBump {
    pub number: u64,
    /// The version the bump brought in.
    pub version: String,
    /// The tags it replaced (empty for PRs from before relbot wrote them).
    pub from: Vec<String>,
    pub merged_at: DateTime<Utc>,
    pub merge_commit: Option<String>,
}

/// The newest merged PR for `policy` among `pulls`, when it is a bump. A
/// newer merged revert means the bump was undone already.
pub fn last_merged_bump(policy: &str, pulls: &[PullRequestInfo]) -> Option<MergedBump> {
    let (pull, marker, merged_at) = pulls
        .iter()
        .filter(|p| p.merged)
        .filter_map(|p| {
            let marker = PrMarker::parse(&p.body).filter(|m| m.policy == policy)?;
            let merged_at = p
                .merged_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                .with_timezone(&Utc);
            Some((p, marker, merged_at))
        })
        .max_by(|a, b| a.2.cmp(&b.2).then(a.0.number.cmp(&b.0.number)))?;
    if marker.rollback_of.is_some() {
        return None;
    }
    Some(MergedBump {
        number: pull.number,
        version: marker.version,
        from: marker.from,
        merged_at,
        merge_commit: pull.merge_commit_sha.clone(),
    })
}

/// The version a policy is held below: the newest failed version among its
/// merged revert PRs.
pub fn held_version(policy: &str, pulls: &[PullRequestInfo]) -> Option<String> {
    pulls
        .iter()
        .filter(|p| p.merged)
        .filter_map(|p| PrMarker::parse(&p.body).filter(|m| m.policy == policy))
        .filter_map(|m| m.rollback_of)
        .max_by(|a, b| compare_versions(a, b))
}

/// Whether proposing `version` breaks the hold on `failed`: anything at or
/// below the failed version stays out.
pub fn is_held(version: &str, failed: &str) -> bool {
    compare_versions(version, failed) != Ordering::Greater
}

/// Semver order when both parse (a leading `v` allowed), else equal only
/// when the same version (a tag that is not a version cannot be ordered:
/// only the failed one itself is held).
fn compare_versions(a: &str, b: &str) -> Ordering {
    let parse = |s: &str| semver::Version::parse(s.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y),
        _ if same_version(a, b) => Ordering::Equal,
        _ => Ordering::Greater,
    }
}

/// What the rollback rule says about one policy now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rollback", rename_all = "camelCase")]
pub enum RollbackDecision {
    /// Degraded after the bump, but not for the whole grace period yet.
    #[serde(rename_all = "camelCase")]
    Waiting {
        failed: String,
        pr: u64,
        degraded_since: DateTime<Utc>,
        due: DateTime<Utc>,
    },
    /// Revert the bump to `failed`: back to `to`.
    RollBack(Revert),
    /// The application is Degraded after the bump, but relbot cannot revert
    /// it (says why).
    Blocked { failed: String, reason: String },
}

/// The revert the rule asks for: the bump PR `pr` brought `failed` and
/// left the application Degraded since then (`unhealthy` say why); `to`
/// is the version it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revert {
    pub failed: String,
    pub to: String,
    pub pr: u64,
    pub degraded_since: DateTime<Utc>,
    pub unhealthy: Vec<UnhealthyObject>,
}

/// Everything the rule looks at for one policy.
#[derive(Debug, Clone)]
pub struct RollbackInput<'a> {
    pub settings: RollbackSettings,
    pub bump: Option<&'a MergedBump>,
    /// Tags in use in the base branch's files.
    pub current: &'a [String],
    pub observation: Option<&'a AppObservation>,
    /// Whether the application's synced revision holds the bump's merge
    /// (`None`: cannot tell from the commits; the sync time decides).
    pub synced_holds_merge: Option<bool>,
    pub now: DateTime<Utc>,
}

/// `None` when there is nothing to do or to say: rollback off, no merged
/// bump, the application not Degraded, or the files no longer at the bump's
/// version.
pub fn decide_rollback(input: &RollbackInput<'_>) -> Option<RollbackDecision> {
    if !input.settings.enabled {
        return None;
    }
    let bump = input.bump?;
    let observed = input.observation?;
    if observed.health != HealthStatus::Degraded {
        return None;
    }
    if !input.current.iter().any(|t| same_version(t, &bump.version)) {
        return None;
    }
    let failed = bump.version.clone();
    // The bump must be what the cluster runs: a sync of a revision holding
    // the merge (or, without commits to compare, a sync after the merge).
    let synced = input
        .synced_holds_merge
        .unwrap_or_else(|| observed.synced_at.is_some_and(|at| at >= bump.merged_at));
    if !synced {
        return Some(RollbackDecision::Blocked {
            failed,
            reason: format!(
                "waiting for the application to sync the merge of #{}",
                bump.number
            ),
        });
    }
    let Some(to) = bump
        .from
        .iter()
        .filter(|t| !same_version(t, &bump.version))
        .max_by(|a, b| compare_versions(a, b))
        .cloned()
    else {
        return Some(RollbackDecision::Blocked {
            failed,
            reason: format!(
                "PR #{} does not say which version it replaced (opened by an older relbot); revert it by hand",
                bump.number
            ),
        });
    };
    // Degraded from an unknown moment: count from now (the status record
    // learns the moment on its next write).
    let turned = observed.since.unwrap_or(input.now);
    let degraded_since = turned.max(bump.merged_at);
    let grace =
        chrono::Duration::from_std(input.settings.grace_period.0).unwrap_or(chrono::Duration::MAX);
    let due = degraded_since
        .checked_add_signed(grace)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if input.now < due {
        return Some(RollbackDecision::Waiting {
            failed,
            pr: bump.number,
            degraded_since,
            due,
        });
    }
    Some(RollbackDecision::RollBack(Revert {
        failed,
        to,
        pr: bump.number,
        degraded_since,
        unhealthy: observed.unhealthy.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;
    use crate::release::github::PrState;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minute)
    }

    fn pull(number: u64, merged_minute: Option<i64>, marker: PrMarker) -> PullRequestInfo {
        PullRequestInfo {
            number,
            node_id: String::new(),
            state: PrState::Closed,
            merged: merged_minute.is_some(),
            merged_at: merged_minute.map(|m| at(m).to_rfc3339()),
            merge_commit_sha: merged_minute.map(|_| format!("{number:040}")),
            title: String::new(),
            body: format!("text\n{}", marker.render()),
            head_ref: "relbot/web".into(),
            head_sha: String::new(),
            base_ref: "main".into(),
            labels: vec![],
            user_login: String::new(),
            html_url: String::new(),
            auto_merge_enabled: false,
            mergeable_state: None,
        }
    }

    fn bump_to_2() -> MergedBump {
        MergedBump {
            number: 7,
            version: "2.0.0".into(),
            from: vec!["1.0.0".into()],
            merged_at: at(0),
            merge_commit: Some("abc".into()),
        }
    }

    fn degraded(since: i64) -> AppObservation {
        AppObservation {
            health: HealthStatus::Degraded,
            since: Some(at(since)),
            revision: Some("def".into()),
            synced_at: Some(at(since)),
            unhealthy: vec![UnhealthyObject {
                object: "Deployment shop/web".into(),
                health: HealthStatus::Degraded,
                reason: "ProgressDeadlineExceeded".into(),
            }],
        }
    }

    fn settings(minutes: u64) -> RollbackSettings {
        RollbackSettings {
            enabled: true,
            grace_period: ConfigDuration::from_secs(minutes * 60),
        }
    }

    fn input<'a>(
        bump: &'a MergedBump,
        current: &'a [String],
        observation: &'a AppObservation,
        now: i64,
    ) -> RollbackInput<'a> {
        RollbackInput {
            settings: settings(10),
            bump: Some(bump),
            current,
            observation: Some(observation),
            synced_holds_merge: Some(true),
            now: at(now),
        }
    }

    #[test]
    fn degraded_past_the_grace_period_rolls_back_to_the_replaced_tag() {
        let (bump, current, seen) = (bump_to_2(), vec!["2.0.0".to_string()], degraded(1));
        match decide_rollback(&input(&bump, &current, &seen, 12)) {
            Some(RollbackDecision::RollBack(revert)) => {
                assert_eq!(
                    (revert.failed.as_str(), revert.to.as_str(), revert.pr),
                    ("2.0.0", "1.0.0", 7)
                );
                assert_eq!(revert.degraded_since, at(1));
                assert_eq!(revert.unhealthy[0].object, "Deployment shop/web");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn within_the_grace_period_it_waits_and_says_until_when() {
        let (bump, current, seen) = (bump_to_2(), vec!["2.0.0".to_string()], degraded(1));
        assert_eq!(
            decide_rollback(&input(&bump, &current, &seen, 10)),
            Some(RollbackDecision::Waiting {
                failed: "2.0.0".into(),
                pr: 7,
                degraded_since: at(1),
                due: at(11),
            })
        );
    }

    #[test]
    fn degraded_before_the_merge_counts_from_the_merge() {
        let (bump, current, seen) = (bump_to_2(), vec!["2.0.0".to_string()], degraded(-30));
        let decision = decide_rollback(&input(&bump, &current, &seen, 5));
        assert!(
            matches!(decision, Some(RollbackDecision::Waiting { degraded_since, .. }) if degraded_since == at(0)),
            "{decision:?}"
        );
    }

    #[test]
    fn nothing_to_do_when_healthy_off_moved_on_or_without_a_merged_bump() {
        let (bump, current) = (bump_to_2(), vec!["2.0.0".to_string()]);
        let healthy = AppObservation {
            health: HealthStatus::Healthy,
            ..degraded(1)
        };
        assert_eq!(decide_rollback(&input(&bump, &current, &healthy, 60)), None);
        let seen = degraded(1);
        let mut off = input(&bump, &current, &seen, 60);
        off.settings.enabled = false;
        assert_eq!(decide_rollback(&off), None);
        let moved = vec!["2.0.1".to_string()];
        assert_eq!(decide_rollback(&input(&bump, &moved, &seen, 60)), None);
        let mut none = input(&bump, &current, &seen, 60);
        none.bump = None;
        assert_eq!(decide_rollback(&none), None);
        let mut unknown = input(&bump, &current, &seen, 60);
        unknown.observation = None;
        assert_eq!(decide_rollback(&unknown), None);
    }

    #[test]
    fn a_revision_without_the_merge_is_not_blamed() {
        let (bump, current, seen) = (bump_to_2(), vec!["2.0.0".to_string()], degraded(1));
        let mut behind = input(&bump, &current, &seen, 60);
        behind.synced_holds_merge = Some(false);
        assert!(matches!(
            decide_rollback(&behind),
            Some(RollbackDecision::Blocked { reason, .. }) if reason.contains("sync the merge of #7")
        ));
        // Without commits to compare, a sync after the merge counts.
        let mut by_time = input(&bump, &current, &seen, 60);
        by_time.synced_holds_merge = None;
        assert!(matches!(
            decide_rollback(&by_time),
            Some(RollbackDecision::RollBack(_))
        ));
        let stale = AppObservation {
            synced_at: Some(at(-1)),
            ..degraded(1)
        };
        let mut by_time = input(&bump, &current, &stale, 60);
        by_time.synced_holds_merge = None;
        assert!(matches!(
            decide_rollback(&by_time),
            Some(RollbackDecision::Blocked { .. })
        ));
    }

    #[test]
    fn a_bump_that_does_not_name_what_it_replaced_is_not_guessed() {
        let bump = MergedBump {
            from: vec![],
            ..bump_to_2()
        };
        let (current, seen) = (vec!["2.0.0".to_string()], degraded(1));
        assert!(matches!(
            decide_rollback(&input(&bump, &current, &seen, 60)),
            Some(RollbackDecision::Blocked { reason, .. }) if reason.contains("revert it by hand")
        ));
    }

    #[test]
    fn several_replaced_tags_go_back_to_the_newest() {
        let bump = MergedBump {
            from: vec!["1.9.0".into(), "1.10.0".into()],
            ..bump_to_2()
        };
        let (current, seen) = (vec!["2.0.0".to_string()], degraded(1));
        assert!(matches!(
            decide_rollback(&input(&bump, &current, &seen, 60)),
            Some(RollbackDecision::RollBack(revert)) if revert.to == "1.10.0"
        ));
    }

    #[test]
    fn the_last_merged_bump_is_read_from_the_markers_and_a_later_revert_ends_it() {
        let pulls = [
            pull(
                3,
                Some(-60),
                PrMarker::bump("web", "1.0.0", &["0.9.0".into()]),
            ),
            pull(
                7,
                Some(0),
                PrMarker::bump("web", "2.0.0", &["1.0.0".into()]),
            ),
            pull(8, None, PrMarker::bump("web", "2.1.0", &["2.0.0".into()])),
            pull(9, Some(5), PrMarker::bump("other", "5.0.0", &[])),
        ];
        assert_eq!(
            last_merged_bump("web", &pulls),
            Some(MergedBump {
                number: 7,
                version: "2.0.0".into(),
                from: vec!["1.0.0".into()],
                merged_at: at(0),
                merge_commit: Some(format!("{:040}", 7)),
            })
        );
        let mut reverted = pulls.to_vec();
        reverted.push(pull(
            10,
            Some(20),
            PrMarker::revert("web", "1.0.0", "2.0.0"),
        ));
        assert_eq!(last_merged_bump("web", &reverted), None);
        assert_eq!(held_version("web", &reverted).as_deref(), Some("2.0.0"));
        assert_eq!(held_version("web", &pulls), None);
    }

    #[test]
    fn the_hold_keeps_out_the_failed_version_and_below_until_a_newer_one() {
        assert!(is_held("2.0.0", "2.0.0"));
        assert!(is_held("v2.0.0", "2.0.0"));
        assert!(is_held("1.5.0", "2.0.0"));
        assert!(is_held("2.0.0-rc.1", "2.0.0"));
        assert!(!is_held("2.0.1", "2.0.0"));
        // Tags that are not versions: only the failed one itself.
        assert!(is_held("2024-01-02", "2024-01-02"));
        assert!(!is_held("2024-01-03", "2024-01-02"));
        // The newest failure counts when there were several.
        let pulls = [
            pull(4, Some(0), PrMarker::revert("web", "1.0.0", "1.1.0")),
            pull(6, Some(9), PrMarker::revert("web", "1.2.0", "1.3.0")),
        ];
        assert_eq!(held_version("web", &pulls).as_deref(), Some("1.3.0"));
    }
}
