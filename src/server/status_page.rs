//! The read-only status page at `/`: server-rendered HTML, no JavaScript,
//! every value escaped. It shows what the wiring last published in a
//! [`StatusSnapshot`] plus the update queue's state; it never shows secrets
//! (repository URLs lose their userinfo before they are stored).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::guard::{Progress, RunSummary};
use crate::redact::redact_userinfo;
use crate::revision::short_revision;

/// What the reconciler and the bump engine last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// Repository URL, credentials removed (see [`redact_userinfo`]).
    pub repository: Option<String>,
    pub branch: Option<String>,
    /// Revision of the last successful fetch.
    pub revision: Option<String>,
    pub apps: Vec<AppStatus>,
    pub pending_prs: Vec<PendingPr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppStatus {
    pub name: String,
    /// Revision last applied.
    pub revision: Option<String>,
    /// `Synced`, `OutOfSync`, `Unknown`, …
    pub sync: String,
    /// `Healthy`, `Progressing`, `Degraded`, `Missing`, `Unknown`, …
    pub health: String,
    pub last_run: Option<DateTime<Utc>>,
    /// One line about the last run (an error, or "3 changed, 1 pruned").
    pub message: Option<String>,
    /// Since when `health` holds without a break.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_since: Option<DateTime<Utc>>,
    /// The objects that are not healthy, with their reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<crate::release::bump::UnhealthyObject>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PendingPr {
    pub policy: String,
    pub number: u64,
    pub title: String,
    pub url: String,
}

/// What the queue and the process look like at render time.
#[derive(Debug, Clone, Default)]
pub struct RuntimeView {
    pub ready: bool,
    pub leader: bool,
    pub progress: Progress,
    pub last_run: Option<RunSummary>,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(t: &Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

/// Only http(s) links become anchors; anything else (e.g. `javascript:`) is text.
fn link(url: &str, text: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        format!("<a href=\"{}\">{}</a>", escape_html(url), escape_html(text))
    } else {
        escape_html(text)
    }
}

/// Renders the whole page.
pub fn render(snapshot: &StatusSnapshot, runtime: &RuntimeView) -> String {
    let mut html = String::with_capacity(4096);
    html.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>relbot status</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}",
        "table{border-collapse:collapse;margin-bottom:1.5em}",
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}",
        "th{background:#f3f3f3}code{font-size:.95em}",
        ".Synced,.Healthy{color:#176f2c}.OutOfSync,.Progressing{color:#8a6100}",
        ".Degraded,.Failed,.Missing{color:#b00020}",
        "</style></head><body>\n<h1>relbot</h1>\n"
    ));
    let _ = writeln!(
        html,
        "<p>Repository <code>{}</code> branch <code>{}</code> at <code>{}</code>. {} · {}.</p>",
        escape_html(
            &snapshot
                .repository
                .as_deref()
                .map(redact_userinfo)
                .unwrap_or_else(|| "—".into())
        ),
        escape_html(snapshot.branch.as_deref().unwrap_or("—")),
        escape_html(snapshot.revision.as_deref().map_or("—", short_revision)),
        if runtime.ready {
            "Ready"
        } else {
            "Not ready yet"
        },
        if runtime.leader {
            "This replica leads (runs updates)"
        } else {
            "Standby replica"
        },
    );
    let queue = match (runtime.progress.running, runtime.progress.pending) {
        (true, true) => "an update is running; another is queued",
        (true, false) => "an update is running",
        (false, true) => "an update is queued",
        (false, false) => "idle",
    };
    let _ = writeln!(html, "<p>Update queue: {queue}.</p>");
    if let Some(run) = &runtime.last_run {
        let outcome = if run.cancelled {
            "cancelled".to_string()
        } else if run.errors.is_empty() {
            "succeeded".to_string()
        } else {
            let parts: Vec<String> = run
                .errors
                .iter()
                .map(|(part, e)| format!("{part}: {e}"))
                .collect();
            format!("failed ({})", parts.join("; "))
        };
        let _ = writeln!(
            html,
            "<p>Last update finished {}: {} (triggered by {}).</p>",
            escape_html(&time(&Some(run.finished))),
            escape_html(&outcome),
            escape_html(&run.reasons.join(", ")),
        );
    }

    html.push_str("<h2>Applications</h2>\n");
    if snapshot.apps.is_empty() {
        html.push_str("<p>No application has been synced yet.</p>\n");
    } else {
        html.push_str(
            "<table><tr><th>Application</th><th>Revision</th><th>Sync</th><th>Health</th><th>Last run</th><th>Message</th></tr>\n",
        );
        for app in &snapshot.apps {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&app.name),
                escape_html(app.revision.as_deref().map_or("—", short_revision)),
                escape_html(&app.sync),
                escape_html(&app.sync),
                escape_html(&app.health),
                escape_html(&app.health),
                escape_html(&time(&app.last_run)),
                escape_html(app.message.as_deref().unwrap_or("")),
            );
        }
        html.push_str("</table>\n");
    }

    html.push_str("<h2>Pending bump pull requests</h2>\n");
    if snapshot.pending_prs.is_empty() {
        html.push_str("<p>None.</p>\n");
    } else {
        html.push_str("<table><tr><th>Policy</th><th>Pull request</th></tr>\n");
        for pr in &snapshot.pending_prs {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape_html(&pr.policy),
                link(&pr.url, &format!("#{} {}", pr.number, pr.title)),
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("<p><a href=\"/metrics\">Metrics</a> · <a href=\"/readyz\">Readiness</a></p>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_user_controlled() {
        let snapshot = StatusSnapshot {
            repository: Some("https://x-access-token:ghp_SECRET@github.com/acme/<repo>.git".into()),
            branch: Some("main".into()),
            revision: Some("0123456789abcdef".into()),
            apps: vec![AppStatus {
                name: "<script>alert(1)</script>".into(),
                sync: "Synced".into(),
                health: "Healthy\" onmouseover=\"x".into(),
                message: Some("a & b".into()),
                ..Default::default()
            }],
            pending_prs: vec![
                PendingPr {
                    policy: "web".into(),
                    number: 3,
                    title: "bump <web>".into(),
                    url: "javascript:alert(1)".into(),
                },
                PendingPr {
                    policy: "api".into(),
                    number: 4,
                    title: "bump api".into(),
                    url: "https://github.com/acme/x/pull/4".into(),
                },
            ],
        };
        let html = render(&snapshot, &RuntimeView::default());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("ghp_SECRET"));
        assert!(html.contains("https://x-access-token:***@github.com/acme/&lt;repo&gt;.git"));
        assert!(!html.contains("onmouseover=\"x"));
        assert!(!html.contains("href=\"javascript"));
        assert!(html.contains("<a href=\"https://github.com/acme/x/pull/4\">#4 bump api</a>"));
        assert!(html.contains("a &amp; b"));
        assert!(html.contains("<code>0123456789ab</code>"));
        assert!(!html.contains("<script"), "no JavaScript at all");
    }
}
