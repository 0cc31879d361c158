//! Plans and results as text for people (aligned, colour only when asked —
//! the CLI asks on a terminal) and as JSON for scripts.

use std::fmt::Write as _;

use super::plan::{Action, Change, ClusterView, Plan};
use crate::revision::short_revision;
use crate::source::order::Stage;

/// ANSI colour, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn magenta(&self, text: &str) -> String {
        self.paint("35", text)
    }

    fn action(&self, action: Action, offline: bool) -> String {
        let label = match (action, offline) {
            (Action::Create, true) => "would create",
            (Action::Create, false) => "create",
            (Action::Update, _) => "update",
            (Action::Recreate, _) => "recreate",
            (Action::Prune, _) => "prune",
            (Action::Unchanged, _) => "unchanged",
        };
        let padded = format!("{label:<12}");
        match action {
            Action::Create => self.green(&padded),
            Action::Update => self.yellow(&padded),
            Action::Recreate => self.magenta(&padded),
            Action::Prune => self.red(&padded),
            Action::Unchanged => self.dim(&padded),
        }
    }

    /// A unified diff with `+`/`-` lines coloured.
    pub fn diff(&self, diff: &str, indent: &str) -> String {
        let mut out = String::new();
        for line in diff.lines() {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                self.bold(line)
            } else if line.starts_with('+') {
                self.green(line)
            } else if line.starts_with('-') {
                self.red(line)
            } else if line.starts_with("@@") {
                self.dim(line)
            } else {
                line.to_string()
            };
            let _ = writeln!(out, "{indent}{painted}");
        }
        out
    }
}

/// What a plan covers, for the heading line.
fn heading(plan: &Plan) -> String {
    match &plan.revision {
        Some(rev) => format!("{} @ {}", plan.application, short_revision(rev)),
        None => plan.application.clone(),
    }
}

/// The notice printed once above offline plans.
pub fn offline_notice(reason: &str) -> String {
    format!(
        "No cluster was consulted ({reason}).\nEvery object is shown as it would be created, in apply order; nothing was validated by a server."
    )
}

/// One line per application: `shop @ 1a2b3c4d5e6f: 3 to create, 1 to update`.
pub fn summary_line(plan: &Plan, style: Style) -> String {
    let offline = if plan.is_offline() {
        " (offline: not checked against a cluster)"
    } else {
        ""
    };
    format!(
        "{}: {}{offline}",
        style.bold(&heading(plan)),
        plan.counts().summary()
    )
}

fn step_heading(change: &Change) -> String {
    match change.action {
        Action::Prune => "prune (reverse order)".to_string(),
        _ => match change.order.stage {
            Stage::Definitions => "stage 1: CRDs, namespaces, cluster roles".to_string(),
            Stage::Classes => "stage 2: classes".to_string(),
            Stage::Resources => format!("wave {}", change.order.wave),
        },
    }
}

/// A plan for people. Unchanged objects are counted, not listed, unless
/// `verbose`.
pub fn render_plan(plan: &Plan, style: Style, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary_line(plan, style));
    let offline = plan.is_offline();
    let width = plan
        .changes
        .iter()
        .map(|c| c.key.to_string().len())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut last_step = String::new();
    for change in plan
        .changes
        .iter()
        .filter(|c| verbose || c.action != Action::Unchanged)
    {
        let step = step_heading(change);
        if step != last_step {
            let _ = writeln!(out, "  {}", style.dim(&format!("── {step}")));
            last_step = step;
        }
        let origin = change
            .origin
            .as_ref()
            .map(|o| o.to_string())
            .unwrap_or_default();
        let mut line = format!(
            "    {} {:<width$}  {}",
            style.action(change.action, offline),
            change.key.to_string(),
            style.dim(&origin),
        );
        let mut tags = Vec::new();
        match change.reason {
            super::plan::Reason::Drift => tags.push("drift".to_string()),
            super::plan::Reason::Adopt => tags.push("adopt: exists without an owner".to_string()),
            _ => {}
        }
        if change.validation == super::plan::Validation::NotServerValidated {
            tags.push("not server-validated: its CRD or namespace is created by this plan".into());
        }
        if change.validation == super::plan::Validation::SchemaChecked {
            tags.push("checked against the schema of its CRD, which this plan creates".into());
        }
        if let Some(held) = &change.held {
            tags.push(format!("held: {held}"));
        }
        if !tags.is_empty() {
            let _ = write!(line, "  ({})", tags.join("; "));
        }
        let _ = writeln!(out, "{}", line.trim_end());
        for note in &change.notes {
            let _ = writeln!(out, "        {}", style.dim(note));
        }
        if let Some(diff) = &change.diff {
            out.push_str(&style.diff(diff, "        "));
        }
    }
    if !plan.hooks.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            style.dim("── hooks (run when the sync has something to apply)")
        );
    }
    for hook in &plan.hooks {
        let phases: Vec<&str> = plan_phases(hook);
        let mut line = format!(
            "    {:<17} {}{}  {}",
            phases.join(","),
            hook.key,
            if hook.generate_name {
                "<generated>"
            } else {
                ""
            },
            style.dim(&hook.origin.to_string())
        );
        let policies: Vec<&str> = hook.delete_policies.iter().map(|p| p.as_str()).collect();
        let _ = write!(
            line,
            "  (wave {}; deleted: {})",
            hook.wave,
            policies.join(", ")
        );
        let _ = writeln!(out, "{line}");
    }
    for problem in &plan.problems {
        let _ = writeln!(out, "  {} {problem}", style.red("error:"));
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  {}", style.dim(note));
    }
    out
}

fn plan_phases(hook: &super::hooks::PlannedHook) -> Vec<&'static str> {
    hook.phases.iter().map(|p| p.as_str()).collect()
}

/// Every plan of a run, with the offline notice once at the top.
pub fn render_plans(plans: &[Plan], style: Style, verbose: bool) -> String {
    let mut out = String::new();
    if let Some(ClusterView::Offline { reason }) = plans.first().map(|p| &p.cluster) {
        let _ = writeln!(out, "{}\n", style.yellow(&offline_notice(reason)));
    } else if let Some(ClusterView::Live { server }) = plans.first().map(|p| &p.cluster) {
        let _ = writeln!(
            out,
            "{}\n",
            style.dim(&format!("Planned against {server}."))
        );
    }
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&render_plan(plan, style, verbose));
    }
    if plans.is_empty() {
        out.push_str("No applications selected.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Application;
    use crate::manifest::{Manifest, Origin};
    use crate::sync::plan::offline_plan;
    use serde_json::json;

    fn plan() -> Plan {
        let app: Application =
            serde_saphyr::from_str("name: shop\npath: shop\nnamespace: shop\n").unwrap();
        let manifests = vec![
            Manifest {
                object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
                origin: Origin {
                    file: "shop/ns.yaml".into(),
                    line: 1,
                },
            },
            Manifest {
                object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "shop"}}),
                origin: Origin {
                    file: "shop/web.yaml".into(),
                    line: 4,
                },
            },
        ];
        offline_plan(
            &app,
            Some("0123456789abcdef0123"),
            manifests,
            "no kubeconfig found",
        )
    }

    #[test]
    fn offline_text_names_the_reason_order_and_origins() {
        let text = render_plans(&[plan()], Style { color: false }, false);
        assert!(
            text.starts_with("No cluster was consulted (no kubeconfig found)."),
            "{text}"
        );
        assert!(
            text.contains(
                "shop @ 0123456789ab: 2 to create (offline: not checked against a cluster)"
            )
        );
        let ns = text
            .find("would create Namespace shop")
            .expect("namespace line");
        let deploy = text
            .find("would create Deployment.apps shop/web")
            .expect("deployment line");
        assert!(ns < deploy);
        assert!(text.contains("shop/web.yaml:4"));
        assert!(!text.contains('\x1b'), "no colour unless asked");
        assert!(render_plans(&[plan()], Style { color: true }, false).contains('\x1b'));
    }
}
