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
    for file in &plan.files {
        for change in &file.changes {
            out.push_str(&format!(
                "- `{}:{}`: `{}` → `{}`\n",
                file.path,
                change.line,
                change.old.trim(),
                change.new.trim()
            ));
        }
    }
    if let Some(summary) = summary {
        out.push_str("\n### Effect on the application\n\n");
        out.push_str(summary.trim_end());
        out.push('\n');
    }
    out.push_str("\n---\nOpened by relbot. Close this PR to skip this version; a newer version opens a new one.\n\n");
    out.push_str(&PrMarker::new(&plan.policy, &plan.to).render());
    out
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
}
