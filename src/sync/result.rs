//! `SyncResult`: how one application's sync ended, object by object. Printed
//! by the CLI, kept in the cluster for `relbot status`, served by `relbot serve`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::hooks::{HookOutcome, HookRun};
use super::plan::{Action, Reason};
use super::plan_report::Style;
use crate::cluster::client::RequestCounts;
use crate::cluster::health::{Health, HealthStatus};
use crate::manifest::{ObjectKey, Origin};
use crate::revision::short_revision;

/// What the sync did to one object (its effect); the command's own outcome is
/// `cli::Outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result", content = "detail")]
pub enum Effect {
    /// Written (created, updated, re-created or pruned) as planned.
    Applied,
    /// Already equal to git; nothing sent.
    Unchanged,
    /// Left alone on purpose (selfHeal off, prune protection…); says why.
    Held(String),
    /// The server refused; says what it said.
    Failed(String),
    /// The run stopped before reaching it; says why.
    NotAttempted(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOutcome {
    pub key: ObjectKey,
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub action: Action,
    pub reason: Reason,
    #[serde(flatten)]
    pub outcome: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// How the run ended as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunPhase {
    /// The cluster equals git (and is healthy or on its way).
    Synced,
    /// Done, but differences remain that the policy holds back.
    OutOfSync,
    /// Something failed or a health gate stopped the run.
    Failed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub plan_ms: u64,
    pub apply_ms: u64,
    pub health_ms: u64,
    pub prune_ms: u64,
    pub total_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    pub application: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub server: String,
    pub started_at: DateTime<Utc>,
    pub phase: RunPhase,
    pub health: HealthStatus,
    /// Since when the application has had `health` without a break: carried
    /// over from the stored result while the health stays the same, so it
    /// survives restarts (what rollback's grace period is measured from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_since: Option<DateTime<Utc>>,
    pub objects: Vec<ObjectOutcome>,
    /// Argo CD hooks this sync ran (or would have, had it not stopped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Requests this run sent, by what they could change (including the
    /// status record, when written).
    pub requests: RequestCounts,
    /// Whether this run rewrote the status ConfigMap (one or two of the
    /// writes above; skipped when the state it records did not change).
    #[serde(default)]
    pub status_recorded: bool,
    pub timings: Timings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeCounts {
    pub created: usize,
    pub updated: usize,
    pub recreated: usize,
    pub pruned: usize,
    pub unchanged: usize,
    pub held: usize,
    pub failed: usize,
    pub not_attempted: usize,
}

impl OutcomeCounts {
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.created, "created"),
            (self.updated, "updated"),
            (self.recreated, "re-created"),
            (self.pruned, "pruned"),
            (self.unchanged, "unchanged"),
            (self.held, "held back"),
            (self.failed, "failed"),
            (self.not_attempted, "not attempted"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "no objects".into()
        } else {
            parts.join(", ")
        }
    }
}

impl SyncResult {
    pub fn counts(&self) -> OutcomeCounts {
        let mut c = OutcomeCounts::default();
        for o in &self.objects {
            match (&o.outcome, o.action) {
                (Effect::Applied, Action::Create) => c.created += 1,
                (Effect::Applied, Action::Update) => c.updated += 1,
                (Effect::Applied, Action::Recreate) => c.recreated += 1,
                (Effect::Applied, Action::Prune) => c.pruned += 1,
                (Effect::Applied | Effect::Unchanged, _) => c.unchanged += 1,
                (Effect::Held(_), _) => c.held += 1,
                (Effect::Failed(_), _) => c.failed += 1,
                (Effect::NotAttempted(_), _) => c.not_attempted += 1,
            }
        }
        c
    }

    /// 0 in sync, 1 differences held back, 2 failed (also when Degraded).
    pub fn exit_code(&self) -> u8 {
        match (self.phase, self.health) {
            (RunPhase::Failed, _) | (_, HealthStatus::Degraded) => 2,
            (RunPhase::OutOfSync, _) => 1,
            (RunPhase::Synced, _) => 0,
        }
    }

    pub fn writes(&self) -> u64 {
        self.requests.writes
    }
}

fn phase_word(phase: RunPhase, style: Style) -> String {
    match phase {
        RunPhase::Synced => style.green("synced"),
        RunPhase::OutOfSync => style.yellow("out of sync"),
        RunPhase::Failed => style.red("failed"),
    }
}

fn health_word(health: HealthStatus, style: Style) -> String {
    match health {
        HealthStatus::Healthy => style.green("Healthy"),
        HealthStatus::Degraded | HealthStatus::Missing => style.red(health.as_str()),
        _ => style.yellow(health.as_str()),
    }
}

/// `shop @ 1a2b3c: synced, Healthy — 2 created, 10 unchanged (0.41 s, 14 requests, 2 writes)`
pub fn summary_line(result: &SyncResult, style: Style) -> String {
    let name = match &result.revision {
        Some(rev) => format!("{} @ {}", result.application, short_revision(rev)),
        None => result.application.clone(),
    };
    let mut line = format!(
        "{}: {}, {} — {}",
        style.bold(&name),
        phase_word(result.phase, style),
        health_word(result.health, style),
        result.counts().summary(),
    );
    // A result read back from the status record carries no timings or
    // request counts (they would make every no-op run rewrite it).
    if result.requests.total() > 0 || result.timings.total_ms > 0 {
        let _ = write!(
            line,
            " ({:.2} s, {} requests, {} writes)",
            result.timings.total_ms as f64 / 1000.0,
            result.requests.total(),
            result.requests.writes,
        );
    }
    line
}

/// A result for people: the summary, the errors (they explain the rest),
/// then every object that was not simply unchanged: what was applied, what
/// was held or failed and why. Objects the run never reached share one
/// reason each, printed once below them rather than once per object.
pub fn render_result(result: &SyncResult, style: Style, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary_line(result, style));
    for e in &result.errors {
        let _ = writeln!(out, "  {} {e}", style.red("error:"));
    }
    let mut not_attempted: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &result.objects {
        let quiet = matches!(o.outcome, Effect::Unchanged)
            && o.health.as_ref().is_none_or(|h| h.status.passes_gate());
        if quiet && !verbose {
            continue;
        }
        let what = match &o.outcome {
            Effect::Applied => style.green(&format!("{:<13}", o.action.past_tense())),
            Effect::Unchanged => style.dim(&format!("{:<13}", "unchanged")),
            Effect::Held(_) => {
                style.yellow(&format!("{:<13}", format!("held {}", o.action.verb())))
            }
            Effect::Failed(_) => {
                style.red(&format!("{:<13}", format!("failed {}", o.action.verb())))
            }
            Effect::NotAttempted(why) => {
                *not_attempted.entry(why.as_str()).or_default() += 1;
                style.dim(&format!("{:<13}", format!("not {}", o.action.past_tense())))
            }
        };
        let mut line = format!("    {what} {}", o.key);
        if o.reason == Reason::Adopt {
            line.push_str(" (adopted: it existed without an owner)");
        } else if o.reason == Reason::Drift {
            line.push_str(" (drift)");
        }
        if let Some(origin) = &o.origin {
            let _ = write!(line, "  {}", style.dim(&origin.to_string()));
        }
        // An object never created is missing by definition: say nothing.
        let never_created =
            matches!(o.outcome, Effect::NotAttempted(_)) && o.action == Action::Create;
        if let Some(h) = o
            .health
            .as_ref()
            .filter(|h| h.status != HealthStatus::Healthy && !never_created)
        {
            let _ = write!(
                line,
                "  [{}{}]",
                health_word(h.status, style),
                if h.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.message)
                }
            );
        }
        let _ = writeln!(out, "{line}");
        match &o.outcome {
            Effect::Held(why) | Effect::Failed(why) => {
                let _ = writeln!(out, "        {}", style.dim(why));
            }
            _ => {}
        }
        if let Some(diff) = &o.diff {
            out.push_str(&style.diff(diff, "        "));
        }
    }
    render_hooks(&mut out, &result.hooks, style);
    for (why, count) in &not_attempted {
        let objects = if *count == 1 { "object" } else { "objects" };
        let _ = writeln!(
            out,
            "  {}",
            style.dim(&format!("{count} {objects} not attempted: {why}"))
        );
    }
    for n in &result.notes {
        let _ = writeln!(out, "  {}", style.dim(n));
    }
    out
}

/// One line per hook run: phase, outcome, object, origin; why it failed
/// or did not run below it.
fn render_hooks(out: &mut String, hooks: &[HookRun], style: Style) {
    for run in hooks {
        let (word, why) = match &run.outcome {
            HookOutcome::Succeeded => (style.green(&format!("{:<10}", "succeeded")), None),
            HookOutcome::Failed(why) => (style.red(&format!("{:<10}", "failed")), Some(why)),
            HookOutcome::NotRun(why) => (style.dim(&format!("{:<10}", "not run")), Some(why)),
        };
        let deleted = if run.deleted { " (deleted)" } else { "" };
        let _ = writeln!(
            out,
            "    {:<13} {word} {}{deleted}  {}",
            format!("{} hook", run.phase.as_str()),
            run.key,
            style.dim(&run.origin.to_string())
        );
        if let Some(why) = why {
            let _ = writeln!(out, "        {}", style.dim(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, action: Action, outcome: Effect) -> ObjectOutcome {
        ObjectOutcome {
            key: ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            api_version: "v1".into(),
            origin: None,
            action,
            reason: Reason::Missing,
            outcome,
            diff: None,
            health: Some(Health {
                status: HealthStatus::Missing,
                message: "not found in the cluster".into(),
            }),
        }
    }

    #[test]
    fn a_stopped_run_shows_its_errors_first_and_each_reason_once() {
        let why = "the plan has errors; nothing was applied";
        let result = SyncResult {
            application: "shop".into(),
            revision: None,
            server: "https://cluster".into(),
            started_at: Utc::now(),
            phase: RunPhase::Failed,
            health: HealthStatus::Missing,
            objects: vec![
                object("a", Action::Create, Effect::NotAttempted(why.into())),
                object("b", Action::Update, Effect::NotAttempted(why.into())),
                object("c", Action::Create, Effect::Failed("forbidden".into())),
            ],
            hooks: Vec::new(),
            errors: vec!["shop/x.yaml:3: unknown kind".into()],
            notes: Vec::new(),
            requests: RequestCounts::default(),
            status_recorded: false,
            health_since: None,
            timings: Timings::default(),
        };
        let text = render_result(&result, Style { color: false }, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("1 failed, 2 not attempted"),
            "a stored result shows no zero timings: {}",
            lines[0]
        );
        assert!(lines[1].contains("error: shop/x.yaml:3"), "{text}");
        assert!(text.contains("not created   ConfigMap shop/a\n"), "{text}");
        assert!(text.contains("not updated   ConfigMap shop/b"), "{text}");
        assert!(
            text.contains("failed create ConfigMap shop/c  [Missing"),
            "{text}"
        );
        assert!(text.contains("        forbidden\n"), "{text}");
        assert_eq!(text.matches(why).count(), 1, "{text}");
        assert!(
            text.contains(&format!("2 objects not attempted: {why}")),
            "{text}"
        );
    }
}
