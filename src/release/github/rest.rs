//! REST operations: pulls, comments, labels, merges, statuses and checks.

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::decision::PrMarker;
use super::error::GitHubError;
use super::types::*;
use super::{GitHubClient, GitHubStats};

/// Listing stops after this many pages of 100 (newest first), so a policy
/// with a long history of merged bumps cannot make a run unbounded.
const MAX_LIST_PAGES: usize = 10;

impl GitHubClient {
    /// The repository's default branch and auto-merge setting.
    pub async fn repository_info(&self) -> Result<RepositoryInfo, GitHubError> {
        #[derive(Deserialize)]
        struct Wire {
            default_branch: String,
            #[serde(default)]
            allow_auto_merge: Option<bool>,
        }
        let path = self.repo_path("");
        let wire: Wire = self.expect_ok(Method::GET, &path, None).await?;
        Ok(RepositoryInfo {
            default_branch: wire.default_branch,
            allow_auto_merge: wire.allow_auto_merge,
        })
    }

    pub async fn default_branch(&self) -> Result<String, GitHubError> {
        Ok(self.repository_info().await?.default_branch)
    }

    /// PRs whose head is `head_branch` in this repository, newest first.
    pub async fn find_pulls_for_branch(
        &self,
        head_branch: &str,
        state: PrStateFilter,
    ) -> Result<Vec<PullRequestInfo>, GitHubError> {
        let head = format!("{}:{head_branch}", self.owner);
        let first = self.repo_path(&format!(
            "/pulls?state={}&head={}&sort=created&direction=desc&per_page=100",
            state.as_str(),
            encode_query_value(&head)
        ));
        self.list_pulls(first).await
    }

    /// Every open PR in the repository (to find relbot markers on branches
    /// relbot no longer uses), newest first.
    pub async fn list_open_pulls(&self) -> Result<Vec<PullRequestInfo>, GitHubError> {
        self.list_pulls(
            self.repo_path("/pulls?state=open&sort=created&direction=desc&per_page=100"),
        )
        .await
    }

    async fn list_pulls(&self, first: String) -> Result<Vec<PullRequestInfo>, GitHubError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        for _ in 0..MAX_LIST_PAGES {
            let Some(path) = next.take() else { break };
            let response = self.rest(Method::GET, &path, None).await?;
            if response.status != 200 {
                return Err(response.into_error(&Method::GET, &path));
            }
            let page: Vec<WirePull> = response.json(&Method::GET, &path)?;
            out.extend(page.into_iter().map(PullRequestInfo::from));
            next = response
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link_path);
        }
        Ok(out)
    }

    pub async fn get_pull(&self, number: u64) -> Result<PullRequestInfo, GitHubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let wire: WirePull = self.expect_ok(Method::GET, &path, None).await?;
        Ok(wire.into())
    }

    /// Opens a PR and labels it. When GitHub answers that a PR for this head
    /// already exists, that open PR gets this title and body instead.
    pub async fn create_pull(&self, spec: &PullSpec) -> Result<CreatedPull, GitHubError> {
        let path = self.repo_path("/pulls");
        let body =
            json!({ "title": spec.title, "body": spec.body, "head": spec.head, "base": spec.base });
        let response = self.rest(Method::POST, &path, Some(&body)).await?;
        let (mut pull, reused_existing) = match response.status {
            201 | 200 => (
                PullRequestInfo::from(response.json::<WirePull>(&Method::POST, &path)?),
                false,
            ),
            422 if response.message().contains("already exists") => {
                let existing = self
                    .find_pulls_for_branch(&spec.head, PrStateFilter::Open)
                    .await?
                    .into_iter()
                    .find(|p| p.base_ref == spec.base)
                    .ok_or_else(|| response.into_error(&Method::POST, &path))?;
                tracing::info!(number = existing.number, head = %spec.head, "a PR for this branch already exists; reusing it");
                (
                    self.update_pull(existing.number, &spec.title, &spec.body)
                        .await?,
                    true,
                )
            }
            _ => return Err(response.into_error(&Method::POST, &path)),
        };
        if !reused_existing {
            GitHubStats::bump(&self.stats.prs_opened);
        }
        let missing: Vec<String> = spec
            .labels
            .iter()
            .filter(|l| !pull.labels.contains(l))
            .cloned()
            .collect();
        if !missing.is_empty() {
            pull.labels = self.add_labels(pull.number, &missing).await?;
        }
        Ok(CreatedPull {
            pull,
            reused_existing,
        })
    }

    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequestInfo, GitHubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let wire: WirePull = self
            .expect_ok(
                Method::PATCH,
                &path,
                Some(&json!({ "title": title, "body": body })),
            )
            .await?;
        GitHubStats::bump(&self.stats.prs_updated);
        Ok(wire.into())
    }

    pub async fn comment(&self, number: u64, body: &str) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let response = self
            .rest(Method::POST, &path, Some(&json!({ "body": body })))
            .await?;
        match response.status {
            200 | 201 => Ok(()),
            _ => Err(response.into_error(&Method::POST, &path)),
        }
    }

    /// Comments, then closes. Closing a closed PR is a no-op on GitHub.
    pub async fn close_pull_with_comment(
        &self,
        number: u64,
        comment: &str,
    ) -> Result<PullRequestInfo, GitHubError> {
        self.comment(number, comment).await?;
        self.close_pull(number, None).await
    }

    /// Closes `pull` because `replaced_by` replaces it: a comment saying so,
    /// and its marker flagged `superseded=true` so relbot never mistakes it
    /// for a PR a human closed.
    pub async fn supersede_pull(
        &self,
        pull: &PullRequestInfo,
        replaced_by: u64,
    ) -> Result<PullRequestInfo, GitHubError> {
        let marker = PrMarker::parse(&pull.body);
        let what = marker
            .as_ref()
            .map(|m| format!(" ({} {})", m.policy, m.version))
            .unwrap_or_default();
        self.comment(
            pull.number,
            &format!("Superseded by #{replaced_by}{what}; closing. — relbot"),
        )
        .await?;
        let body = marker.map(|m| {
            PrMarker {
                superseded: true,
                ..m
            }
            .replace_in(&pull.body)
        });
        self.close_pull(pull.number, body.as_deref()).await
    }

    async fn close_pull(
        &self,
        number: u64,
        new_body: Option<&str>,
    ) -> Result<PullRequestInfo, GitHubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let mut patch = json!({ "state": "closed" });
        if let Some(body) = new_body {
            patch["body"] = Value::from(body);
        }
        let wire: WirePull = self.expect_ok(Method::PATCH, &path, Some(&patch)).await?;
        GitHubStats::bump(&self.stats.prs_closed);
        Ok(wire.into())
    }

    /// Adds labels (creating unknown ones, as GitHub does); returns all labels.
    pub async fn add_labels(
        &self,
        number: u64,
        labels: &[String],
    ) -> Result<Vec<String>, GitHubError> {
        let path = self.repo_path(&format!("/issues/{number}/labels"));
        let wire: Vec<WireLabel> = self
            .expect_ok(Method::POST, &path, Some(&json!({ "labels": labels })))
            .await?;
        Ok(wire.into_iter().map(|l| l.name).collect())
    }

    /// Merges now, only if the head is still `expected_head_sha`. Returns the
    /// merge commit's sha.
    pub async fn merge_pull(
        &self,
        number: u64,
        expected_head_sha: &str,
        method: MergeMethod,
    ) -> Result<String, GitHubError> {
        #[derive(Deserialize)]
        struct Wire {
            sha: String,
        }
        let path = self.repo_path(&format!("/pulls/{number}/merge"));
        let body = json!({ "sha": expected_head_sha, "merge_method": rest_merge_method(method) });
        let response = self.rest(Method::PUT, &path, Some(&body)).await?;
        match response.status {
            200 => {
                GitHubStats::bump(&self.stats.prs_merged);
                Ok(response.json::<Wire>(&Method::PUT, &path)?.sha)
            }
            405 => Err(GitHubError::NotMergeable {
                number,
                message: response.message(),
            }),
            409 => Err(GitHubError::HeadChanged {
                number,
                expected_sha: expected_head_sha.to_string(),
                message: response.message(),
            }),
            _ => Err(response.into_error(&Method::PUT, &path)),
        }
    }

    /// Check names the base branch requires, from its protection rules.
    /// Empty when the branch is unprotected or the token may not read them.
    pub async fn required_checks(&self, branch: &str) -> Result<Vec<String>, GitHubError> {
        #[derive(Deserialize)]
        struct Check {
            context: String,
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
                let mut names = wire.contexts;
                names.extend(wire.checks.into_iter().map(|c| c.context));
                names.sort();
                names.dedup();
                Ok(names)
            }
            403 | 404 => Ok(vec![]),
            _ => Err(response.into_error(&Method::GET, &path)),
        }
    }

    /// Commit statuses and check runs on `sha`, as one verdict. A `required`
    /// name that has not reported yet counts as pending.
    pub async fn combined_status_and_checks(
        &self,
        sha: &str,
        required: &[String],
    ) -> Result<ChecksSummary, GitHubError> {
        let status_path = self.repo_path(&format!("/commits/{sha}/status?per_page=100"));
        let status: WireCombinedStatus = self.expect_ok(Method::GET, &status_path, None).await?;
        let runs_path = self.repo_path(&format!("/commits/{sha}/check-runs?per_page=100"));
        let runs: WireCheckRuns = self.expect_ok(Method::GET, &runs_path, None).await?;
        Ok(summarize_checks(
            &status.statuses,
            &runs.check_runs,
            required,
        ))
    }

    async fn expect_ok<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, GitHubError> {
        let response = self.rest(method.clone(), path, body).await?;
        if (200..300).contains(&response.status) {
            response.json(&method, path)
        } else {
            Err(response.into_error(&method, path))
        }
    }
}

pub(crate) fn rest_merge_method(method: MergeMethod) -> &'static str {
    match method {
        MergeMethod::Squash => "squash",
        MergeMethod::Merge => "merge",
        MergeMethod::Rebase => "rebase",
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
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCheckRun {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireCheckRuns {
    #[serde(default)]
    check_runs: Vec<WireCheckRun>,
}

/// The combined verdict. The combined status' own `state` is not used: it is
/// `pending` when a commit has no statuses at all, which would block forever
/// on repositories that only use check runs.
pub(crate) fn summarize_checks(
    statuses: &[WireStatus],
    runs: &[WireCheckRun],
    required: &[String],
) -> ChecksSummary {
    let mut failing = Vec::new();
    let mut pending = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in statuses {
        seen.insert(s.context.as_str());
        match s.state.as_str() {
            "success" => {}
            "pending" => pending.push(s.context.clone()),
            _ => failing.push(s.context.clone()),
        }
    }
    for r in runs {
        seen.insert(r.name.as_str());
        if r.status != "completed" {
            pending.push(r.name.clone());
            continue;
        }
        match r.conclusion.as_deref() {
            Some("success" | "neutral" | "skipped") => {}
            _ => failing.push(r.name.clone()),
        }
    }
    for name in required {
        if !seen.contains(name.as_str()) {
            pending.push(name.clone());
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

/// The path of a `Link` header's `rel="next"` target, relative to the host.
pub(crate) fn next_link_path(link: &str) -> Option<String> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| {
            let url = part
                .split(';')
                .next()?
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            let uri: http::Uri = url.parse().ok()?;
            uri.path_and_query().map(|pq| pq.as_str().to_string())
        })
}

fn encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query_value(value: &str) -> String {
    encode(value, b":/")
}

fn encode_path_segment(value: &str) -> String {
    encode(value, b"")
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
        WireCheckRun {
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
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
            &["ci/test".into()],
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
            &["ci/test".into(), "a".into()],
        );
        assert_eq!(s.state, ChecksState::Success);
    }

    #[test]
    fn link_header_next_path() {
        let link = r#"<https://api.github.com/repositories/1/pulls?page=2&per_page=100>; rel="next", <https://api.github.com/repositories/1/pulls?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            next_link_path(link).as_deref(),
            Some("/repositories/1/pulls?page=2&per_page=100")
        );
        assert_eq!(next_link_path(r#"<https://x/y?page=1>; rel="prev""#), None);
    }

    #[test]
    fn query_and_path_encoding() {
        assert_eq!(
            encode_query_value("acme:relbot/django api"),
            "acme:relbot/django%20api"
        );
        assert_eq!(encode_path_segment("release/1.x"), "release%2F1.x");
    }
}
