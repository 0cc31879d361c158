//! What the wiring last published for the status pages (rendered in
//! [`super::page`]) and `/api/status`: a [`StatusSnapshot`]. It never holds
//! secrets (repository URLs lose their userinfo before they are stored).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the reconciler and the bump engine last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// Repository URL, credentials removed (see [`crate::redact::redact_userinfo`]).
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
    /// Where the merge stands: `waiting for checks`, `auto-merge on`,
    /// `blocked: shop is Degraded`…; None when nothing was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
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
