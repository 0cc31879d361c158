//! Whether a commit's checks allow a merge: the base branch's required checks
//! (each possibly pinned to the GitHub App that must report it), and every
//! commit status and check run on the commit, read across all their pages.
//! Used when relbot merges itself (auto-merge unavailable); GitHub's own
//! merge endpoint remains the final judge.

use http::Method;
use serde::Deserialize;

use super::GitHubClient;
use super::error::GitHubError;
use super::pages::{Listing, Page};
use super::rest::encode_path_segment;
use super::types::*;

/// Pages of 100 read per list before giving up (1,000 statuses or check
/// runs; GitHub itself lists check runs of the newest 1,000 suites only).
const MAX_CHECK_PAGES: usize = 10;

impl GitHubClient {
    /// The checks the base branch requires, from its protection rules.
    /// Empty when the branch is unprotected or the token may not read them.
    pub async fn required_checks(&self, branch: &str) -> Result<Vec<RequiredCheck>, GitHubError> {
        #[derive(Deserialize)]
        struct Check {
            context: String,
            /// `null` (or `-1` when set that way) accepts any source.
            #[serde(default)]
            app_id: Option<i64>,
        }
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            contexts: Vec<String>,
            #[serde(default)]
            checks: Vec<Check>,
        }
        let path = self.repo_path(&format!(
            "/branches/{}/protection/required_status_checks",
            encode_path_segment(branch)
        ));
        let response = self.rest(Method::GET, &path, None).await?;
        match response.status {
            200 => {
                let wire: Wire = response.json(&Method::GET, &path)?;
                // `checks` is the newer, richer form; `contexts` (deprecated)
                // lists the same names without their apps.
                let mut required: Vec<RequiredCheck> = wire
                    .checks
                    .into_iter()
                    .map(|c| RequiredCheck {
                        context: c.context,
                        app_id: c.app_id.and_then(|id| u64::try_from(id).ok()),
                    })
                    .collect();
                for context in wire.contexts {
                    if !required.iter().any(|r| r.context == context) {
                        required.push(RequiredCheck {
                            context,
                            app_id: None,
                        });
                    }
                }
                required.sort();
                required.dedup();
                Ok(required)
            }
            403 | 404 => Ok(vec![]),
            _ => Err(response.into_error(&Method::GET, &path)),
        }
    }

    /// Commit statuses and check runs on `sha`, every page of each, as one
    /// verdict. A required check that has not reported (from its app, when
    /// pinned) counts as pending; so does a list too long to read whole.
    pub async fn combined_status_and_checks(
        &self,
        sha: &str,
        required: &[RequiredCheck],
    ) -> Result<ChecksSummary, GitHubError> {
        let statuses: Listing<WireStatus> = self
            .read_pages(
                self.repo_path(&format!("/commits/{sha}/status?per_page=100")),
                MAX_CHECK_PAGES,
                |w: WireCombinedStatus| Page {
                    items: w.statuses,
                    total_count: w.total_count,
                },
            )
            .await?;
        let runs: Listing<WireCheckRun> = self
            .read_pages(
                self.repo_path(&format!("/commits/{sha}/check-runs?per_page=100")),
                MAX_CHECK_PAGES,
                |w: WireCheckRuns| Page {
                    items: w.check_runs,
                    total_count: w.total_count,
                },
            )
            .await?;
        let mut summary = summarize_checks(&statuses.items, &runs.items, required);
        // Unread checks may hold a failure: never call that a success.
        for (unread, what) in [(statuses.unread, "statuses"), (runs.unread, "check runs")] {
            if let Some(unread) = unread {
                summary.pending.push(format!("{unread} {what} not read"));
                if summary.state == ChecksState::Success {
                    summary.state = ChecksState::Pending;
                }
            }
        }
        Ok(summary)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireStatus {
    pub context: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
struct WireCombinedStatus {
    #[serde(default)]
    statuses: Vec<WireStatus>,
    #[serde(default)]
    total_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireApp {
    pub id: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCheckRun {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub app: Option<WireApp>,
}

#[derive(Debug, Deserialize)]
struct WireCheckRuns {
    #[serde(default)]
    check_runs: Vec<WireCheckRun>,
    #[serde(default)]
    total_count: Option<u64>,
}

/// The combined verdict. The combined status' own `state` is not used: it is
/// `pending` when a commit has no statuses at all, which would block forever
/// on repositories that only use check runs. Any failing status or run fails
/// the verdict, required or not, whichever app reported it.
pub(crate) fn summarize_checks(
    statuses: &[WireStatus],
    runs: &[WireCheckRun],
    required: &[RequiredCheck],
) -> ChecksSummary {
    let mut failing = Vec::new();
    let mut pending = Vec::new();
    for s in statuses {
        match s.state.as_str() {
            "success" => {}
            "pending" => pending.push(s.context.clone()),
            _ => failing.push(s.context.clone()),
        }
    }
    for r in runs {
        if r.status != "completed" {
            pending.push(r.name.clone());
            continue;
        }
        match r.conclusion.as_deref() {
            Some("success" | "neutral" | "skipped") => {}
            _ => failing.push(r.name.clone()),
        }
    }
    for check in required {
        // A check pinned to an app is reported only by that app's check runs:
        // a status or another app's run of the same name proves nothing
        // (statuses do not say which app posted them).
        let reported = match check.app_id {
            Some(app) => runs
                .iter()
                .any(|r| r.name == check.context && r.app.as_ref().is_some_and(|a| a.id == app)),
            None => {
                statuses.iter().any(|s| s.context == check.context)
                    || runs.iter().any(|r| r.name == check.context)
            }
        };
        if !reported {
            pending.push(check.to_string());
        }
    }
    let state = if !failing.is_empty() {
        ChecksState::Failure
    } else if !pending.is_empty() {
        ChecksState::Pending
    } else {
        ChecksState::Success
    };
    ChecksSummary {
        state,
        failing,
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(context: &str, state: &str) -> WireStatus {
        WireStatus {
            context: context.into(),
            state: state.into(),
        }
    }

    fn run(name: &str, status: &str, conclusion: Option<&str>) -> WireCheckRun {
        run_from(name, 15368, status, conclusion)
    }

    fn run_from(name: &str, app: u64, status: &str, conclusion: Option<&str>) -> WireCheckRun {
        WireCheckRun {
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
            app: Some(WireApp { id: app }),
        }
    }

    fn any(context: &str) -> RequiredCheck {
        RequiredCheck {
            context: context.into(),
            app_id: None,
        }
    }

    #[test]
    fn no_checks_and_nothing_required_is_success() {
        assert_eq!(summarize_checks(&[], &[], &[]).state, ChecksState::Success);
    }

    #[test]
    fn required_check_not_reported_is_pending() {
        let s = summarize_checks(
            &[],
            &[run("lint", "completed", Some("success"))],
            &[any("ci/test")],
        );
        assert_eq!(s.state, ChecksState::Pending);
        assert_eq!(s.pending, vec!["ci/test"]);
    }

    #[test]
    fn failures_beat_pending() {
        let s = summarize_checks(
            &[status("ci/test", "pending"), status("ci/e2e", "error")],
            &[
                run("lint", "in_progress", None),
                run("build", "completed", Some("timed_out")),
            ],
            &[],
        );
        assert_eq!(s.state, ChecksState::Failure);
        assert_eq!(s.failing, vec!["ci/e2e", "build"]);
        assert_eq!(s.pending, vec!["ci/test", "lint"]);
    }

    #[test]
    fn neutral_and_skipped_runs_pass() {
        let s = summarize_checks(
            &[status("ci/test", "success")],
            &[
                run("a", "completed", Some("neutral")),
                run("b", "completed", Some("skipped")),
            ],
            &[any("ci/test"), any("a")],
        );
        assert_eq!(s.state, ChecksState::Success);
    }

    #[test]
    fn a_check_pinned_to_an_app_counts_only_from_that_app() {
        let pinned = RequiredCheck {
            context: "ci/test".into(),
            app_id: Some(42),
        };
        // Same name, another app; and a status of that name: not the check.
        let s = summarize_checks(
            &[status("ci/test", "success")],
            &[run_from("ci/test", 7, "completed", Some("success"))],
            std::slice::from_ref(&pinned),
        );
        assert_eq!(s.state, ChecksState::Pending);
        assert_eq!(s.pending, vec!["ci/test (from GitHub App 42)"]);
        let s = summarize_checks(
            &[],
            &[run_from("ci/test", 42, "completed", Some("success"))],
            &[pinned],
        );
        assert_eq!(s.state, ChecksState::Success);
    }
}
