//! REST operations on pull requests: list, open, edit, comment, label,
//! close and merge.

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::decision::PrMarker;
use super::error::GitHubError;
use super::pages::Page;
use super::types::*;
use super::{GitHubClient, GitHubStats};

/// Pages of 100 read of one branch's pull requests, newest first: the
/// decisions need the recent ones, and a policy with a long history of
/// merged bumps must not make a run unbounded.
pub(crate) const BRANCH_HISTORY_PAGES: usize = 10;

/// Pages of 100 read of the open pull requests. relbot needs every one (its
/// own PRs on branches it no longer uses are superseded from this list), so
/// it reads on; the bound only stops a runaway listing.
pub(crate) const OPEN_PULL_PAGES: usize = 100;

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
        let owner = self.owner();
        let pulls = self.list_branch_pulls(&owner, head_branch, state).await?;
        // A transferred repository (learned while listing): the old owner's
        // head label matches nothing; ask again with the new one.
        if self.owner() != owner {
            return self
                .list_branch_pulls(&self.owner(), head_branch, state)
                .await;
        }
        Ok(pulls)
    }

    async fn list_branch_pulls(
        &self,
        owner: &str,
        head_branch: &str,
        state: PrStateFilter,
    ) -> Result<Vec<PullRequestInfo>, GitHubError> {
        let head = format!("{owner}:{head_branch}");
        let first = self.repo_path(&format!(
            "/pulls?state={}&head={}&sort=created&direction=desc&per_page=100",
            state.as_str(),
            encode_query_value(&head)
        ));
        self.list_pulls(first, self.list_pages.history, "the branch's pull requests")
            .await
    }

    /// Every open PR in the repository (to find relbot markers on branches
    /// relbot no longer uses), newest first.
    pub async fn list_open_pulls(&self) -> Result<Vec<PullRequestInfo>, GitHubError> {
        self.list_pulls(
            self.repo_path("/pulls?state=open&sort=created&direction=desc&per_page=100"),
            self.list_pages.open,
            "open pull requests",
        )
        .await
    }

    /// Reads up to `max_pages`; a listing cut short is said so (a warning with
    /// the counts, and `listings_truncated` in the stats), never passed off
    /// as complete in silence.
    async fn list_pulls(
        &self,
        first: String,
        max_pages: usize,
        what: &str,
    ) -> Result<Vec<PullRequestInfo>, GitHubError> {
        let listing = self
            .read_pages(first, max_pages, |page: Vec<WirePull>| Page {
                items: page,
                total_count: None,
            })
            .await?;
        if let Some(unread) = listing.unread {
            GitHubStats::bump(&self.stats.listings_truncated);
            tracing::warn!(
                repository = %self.repository(),
                read = listing.items.len(),
                "listing {what} stopped after {} pages: {} read (newest first), {unread} not read; relbot decides on the ones it read",
                listing.pages,
                listing.items.len(),
            );
        }
        Ok(listing
            .items
            .into_iter()
            .map(PullRequestInfo::from)
            .collect())
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

pub(crate) fn encode_path_segment(value: &str) -> String {
    encode(value, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_path_encoding() {
        assert_eq!(
            encode_query_value("acme:relbot/django api"),
            "acme:relbot/django%20api"
        );
        assert_eq!(encode_path_segment("release/1.x"), "release%2F1.x");
    }
}
