//! The pull request for one policy's bump: its title, its body, and the
//! GitHub calls that open it, update it in place, or leave it alone.

use chrono::{DateTime, Utc};

use super::BumpPlan;
use super::health::UnhealthyObject;
use crate::release::github::PrMarker;

/// `chore(deps): update django-api to 0.0.18` (also the commit message).
pub fn title(plan: &BumpPlan) -> String {
    format!("chore(deps): update {} to {}", plan.policy, plan.to)
}

/// The PR body: versions, the changed lines per file, the application
/// summary (when the policy names an application) and relbot's marker.
/// Deterministic for the same plan and summary, so an unchanged bump leaves
/// the PR untouched.
/// GitHub refuses a pull request body longer than 65,536 characters; the
/// lists below stop well before that and say how much they left out.
const BODY_BUDGET: usize = 60_000;

pub fn body(plan: &BumpPlan, summary: Option<&str>) -> String {
    let mut out = format!(
        "Updates `{}` (ImagePolicy `{}`): `{}` → `{}`.\n",
        plan.image,
        plan.policy,
        plan.from.join("`, `"),
        plan.to
    );
    if let Some(digest) = &plan.digest {
        out.push_str(&format!("\nPinned digest: `{digest}`\n"));
    }
    out.push_str("\n### Changed lines\n\n");
    let lines = changed_lines(plan);
    // Half the budget for the lines, the rest for the summary and marker.
    push_within(&mut out, &lines, BODY_BUDGET / 2, "changed lines");
    if let Some(summary) = summary {
        out.push_str("\n### Effect on the application\n\n");
        let summary: Vec<String> = summary
            .trim_end()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        push_within(&mut out, &summary, BODY_BUDGET, "summary lines");
    }
    out.push_str("\n---\nOpened by relbot. Close this PR to skip this version; a newer version opens a new one.\n\n");
    out.push_str(&PrMarker::bump(&plan.policy, &plan.to, &replaced_tags(plan)).render());
    out
}

/// The tags a plan replaces, as the marker records them (a reference
/// without a tag is no version to go back to).
fn replaced_tags(plan: &BumpPlan) -> Vec<String> {
    plan.from
        .iter()
        .filter(|t| !t.contains(char::is_whitespace) && !t.contains(','))
        .cloned()
        .collect()
}

/// Why a revert is proposed: what the PR body says about it.
#[derive(Debug, Clone)]
pub struct RevertReason<'a> {
    pub application: &'a str,
    /// The bump PR being undone.
    pub bump_pr: u64,
    pub degraded_since: DateTime<Utc>,
    pub grace: std::time::Duration,
    pub unhealthy: &'a [UnhealthyObject],
}

/// `revert(deps): roll back web from 2.0.0 to 1.0.0`.
pub fn revert_title(plan: &BumpPlan) -> String {
    format!(
        "revert(deps): roll back {} from {} to {}",
        plan.policy,
        plan.from.join(", "),
        plan.to
    )
}

/// How much of one object's reason the body shows.
const REASON_CHARS: usize = 300;
/// How many unhealthy objects the body lists.
const UNHEALTHY_SHOWN: usize = 50;

/// The revert PR body: why (the application, since when, the unhealthy
/// objects and their reasons), the changed lines, the hold, the marker.
/// Health reasons come from object status conditions, never from Secret
/// data (the stored status holds no values).
pub fn revert_body(plan: &BumpPlan, why: &RevertReason<'_>) -> String {
    let failed = plan.from.join("`, `");
    let mut out = format!(
        "Rolls `{}` (ImagePolicy `{}`) back from `{failed}` to `{}`: the bump merged in #{} left application `{}` Degraded since {} (longer than the grace period, {}).\n",
        plan.image,
        plan.policy,
        plan.to,
        why.bump_pr,
        why.application,
        why.degraded_since.format("%Y-%m-%d %H:%M:%S UTC"),
        humantime::format_duration(why.grace),
    );
    out.push_str("\n### Unhealthy objects\n\n");
    if why.unhealthy.is_empty() {
        out.push_str("- (the stored status names none; see `relbot status`)\n");
    }
    for object in why.unhealthy.iter().take(UNHEALTHY_SHOWN) {
        let reason: String = object
            .reason
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(REASON_CHARS)
            .collect();
        let reason = if reason.is_empty() {
            "no reason given".to_string()
        } else {
            reason.replace('`', "'")
        };
        out.push_str(&format!(
            "- `{}`: {} — {reason}\n",
            object.object,
            object.health.as_str()
        ));
    }
    if why.unhealthy.len() > UNHEALTHY_SHOWN {
        out.push_str(&format!(
            "- … and {} more\n",
            why.unhealthy.len() - UNHEALTHY_SHOWN
        ));
    }
    out.push_str("\n### Changed lines\n\n");
    let lines = changed_lines(plan);
    push_within(&mut out, &lines, BODY_BUDGET, "changed lines");
    out.push_str(&format!(
        "\n---\nOpened by relbot. Until a tag newer than `{failed}` appears, relbot proposes no version up to `{failed}` for this policy. Close this PR to keep `{failed}`.\n\n"
    ));
    out.push_str(&PrMarker::revert(&plan.policy, &plan.to, &plan.from.join(",")).render());
    out
}

/// One list item per line the plan changes: `- `file:line`: `old` → `new``.
fn changed_lines(plan: &BumpPlan) -> Vec<String> {
    plan.files
        .iter()
        .flat_map(|file| {
            file.changes.iter().map(move |change| {
                format!(
                    "- `{}:{}`: `{}` → `{}`\n",
                    file.path,
                    change.line,
                    change.old.trim(),
                    change.new.trim()
                )
            })
        })
        .collect()
}

/// Appends `items` while `out` stays under `budget` bytes; the rest is
/// counted in one closing line.
fn push_within(out: &mut String, items: &[String], budget: usize, what: &str) {
    for (shown, item) in items.iter().enumerate() {
        if out.len() + item.len() > budget {
            out.push_str(&format!(
                "- … and {} more {what} (too many to list here)\n",
                items.len() - shown
            ));
            return;
        }
        out.push_str(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::bump::{BumpFile, BumpLine};

    fn plan() -> BumpPlan {
        BumpPlan {
            policy: "django-api".into(),
            image: "docker.io/ahuora/django-api".into(),
            from: vec!["0.0.17".into()],
            to: "0.0.18".into(),
            digest: None,
            files: vec![BumpFile {
                path: "platform/api/deployment.yaml".into(),
                changes: vec![BumpLine {
                    line: 28,
                    old: "          image: ahuora/django-api:0.0.17".into(),
                    new: "          image: ahuora/django-api:0.0.18".into(),
                }],
                new_text: String::new(),
            }],
        }
    }

    #[test]
    fn body_lists_lines_and_carries_the_marker() {
        let body = body(&plan(), Some("1 object changed"));
        assert!(body.contains("`0.0.17` → `0.0.18`"), "{body}");
        assert!(body.contains(
            "- `platform/api/deployment.yaml:28`: `image: ahuora/django-api:0.0.17` → `image: ahuora/django-api:0.0.18`"
        ));
        assert!(body.contains("1 object changed"));
        let marker = PrMarker::parse(&body).unwrap();
        assert_eq!(
            (marker.policy.as_str(), marker.version.as_str()),
            ("django-api", "0.0.18")
        );
        assert_eq!(
            marker.from,
            ["0.0.17"],
            "the marker says what to go back to"
        );
        assert_eq!(title(&plan()), "chore(deps): update django-api to 0.0.18");
    }

    #[test]
    fn revert_body_names_the_unhealthy_objects_and_carries_a_revert_marker() {
        let mut plan = plan();
        plan.from = vec!["0.0.18".into()];
        plan.to = "0.0.17".into();
        let unhealthy = [UnhealthyObject {
            object: "Deployment ahuora/django-api".into(),
            health: crate::cluster::health::HealthStatus::Degraded,
            reason: "ProgressDeadlineExceeded: ReplicaSet `x` has\ntimed out".into(),
        }];
        let why = RevertReason {
            application: "ahuora",
            bump_pr: 41,
            degraded_since: DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            grace: std::time::Duration::from_secs(600),
            unhealthy: &unhealthy,
        };
        let body = revert_body(&plan, &why);
        assert!(body.contains("back from `0.0.18` to `0.0.17`"), "{body}");
        assert!(body.contains("merged in #41 left application `ahuora` Degraded since 2026-01-01 12:00:00 UTC (longer than the grace period, 10m)"), "{body}");
        assert!(
            body.contains("- `Deployment ahuora/django-api`: Degraded — ProgressDeadlineExceeded: ReplicaSet 'x' has timed out"),
            "{body}"
        );
        let marker = PrMarker::parse(&body).unwrap();
        assert_eq!(marker.version, "0.0.17");
        assert_eq!(marker.rollback_of.as_deref(), Some("0.0.18"));
        assert_eq!(
            revert_title(&plan),
            "revert(deps): roll back django-api from 0.0.18 to 0.0.17"
        );
    }

    #[test]
    fn a_huge_bump_stays_under_githubs_body_limit_and_keeps_the_marker() {
        let mut plan = plan();
        let line = plan.files[0].changes[0].clone();
        plan.files[0].changes = (0..5_000)
            .map(|i| BumpLine {
                line: i,
                ..line.clone()
            })
            .collect();
        let summary = "Deployment ahuora/django-api: image changes\n".repeat(5_000);
        let body = body(&plan, Some(&summary));
        assert!(body.chars().count() <= 65_536, "{} chars", body.len());
        assert!(body.contains("more changed lines (too many to list here)"));
        assert!(body.contains("more summary lines (too many to list here)"));
        assert!(PrMarker::parse(&body).is_some(), "the marker survives");
    }
}
