//! The pull request for one policy's bump: its title, its body, and the
//! GitHub calls that open it, update it in place, or leave it alone.

use super::BumpPlan;
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
    let lines: Vec<String> = plan
        .files
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
        .collect();
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
    out.push_str(&PrMarker::new(&plan.policy, &plan.to).render());
    out
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
        assert_eq!(title(&plan()), "chore(deps): update django-api to 0.0.18");
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
