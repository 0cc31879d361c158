//! Native auto-merge through GraphQL, and the merge decision built on it.

use serde_json::{Value, json};

use super::error::GitHubError;
use super::types::*;
use super::{GitHubClient, GitHubStats};

/// `expectedHeadOid` pins the request to the commit relbot pushed: GitHub
/// refuses it when the branch moved since (someone pushed after relbot), so
/// a commit relbot never saw is not queued for merging in its name.
const ENABLE_AUTO_MERGE: &str = "mutation EnableAutoMerge($pullRequestId: ID!, $mergeMethod: PullRequestMergeMethod!, $expectedHeadOid: GitObjectID!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: $mergeMethod, expectedHeadOid: $expectedHeadOid}) {
    pullRequest { number headRefOid autoMergeRequest { enabledAt mergeMethod } }
  }
}";

/// How GitHub phrases the refusals that are not failures. Matched on
/// lower-cased substrings: GitHub prefixes them inconsistently
/// ("Pull request Pull request is in clean status"), and does not document
/// the wording of the `expectedHeadOid` refusal (it names the head oid).
fn classify_refusal(message: &str) -> Option<AutoMergeOutcome> {
    let m = message.to_ascii_lowercase();
    if m.contains("head oid") && !m.contains("doesn't accept argument") {
        Some(AutoMergeOutcome::HeadMoved)
    } else if m.contains("clean status") {
        Some(AutoMergeOutcome::AlreadyClean)
    } else if m.contains("auto merge is not allowed")
        || m.contains("auto-merge is not allowed")
        || m.contains("auto merge is not enabled")
        || m.contains("auto-merge is not enabled")
        || m.contains("protected branch rules not configured")
    {
        Some(AutoMergeOutcome::Unavailable)
    } else {
        None
    }
}

fn graphql_merge_method(method: MergeMethod) -> &'static str {
    match method {
        MergeMethod::Squash => "SQUASH",
        MergeMethod::Merge => "MERGE",
        MergeMethod::Rebase => "REBASE",
    }
}

impl GitHubClient {
    /// Asks GitHub to merge `pull` once its requirements are met, provided
    /// its head is still `pull.head_sha` (the commit relbot pushed).
    pub async fn enable_auto_merge(
        &self,
        pull: &PullRequestInfo,
        method: MergeMethod,
    ) -> Result<AutoMergeOutcome, GitHubError> {
        let request = json!({
            "query": ENABLE_AUTO_MERGE,
            "variables": {
                "pullRequestId": pull.node_id,
                "mergeMethod": graphql_merge_method(method),
                "expectedHeadOid": pull.head_sha,
            },
        });
        let response = self.graphql_raw(&request).await?;
        if response.status != 200 {
            return Err(response.into_error(&http::Method::POST, "/graphql"));
        }
        let body: Value = response.json(&http::Method::POST, "/graphql")?;
        let errors: Vec<&str> = body
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
            })
            .collect();
        if errors.is_empty() {
            let enabled = body
                .pointer("/data/enablePullRequestAutoMerge/pullRequest")
                .is_some_and(|p| !p.is_null());
            if !enabled {
                return Err(GitHubError::GraphQl {
                    operation: "enablePullRequestAutoMerge",
                    message: "the answer carried neither data nor errors".into(),
                });
            }
            GitHubStats::bump(&self.stats.automerge_enabled);
            return Ok(AutoMergeOutcome::Enabled);
        }
        if let Some(outcome) = errors.iter().find_map(|m| classify_refusal(m)) {
            return Ok(outcome);
        }
        let mut message = errors.join("; ");
        if message.contains("expectedHeadOid") {
            // GitHub Enterprise Server releases before the argument existed.
            message.push_str(
                " (this GitHub Enterprise Server predates expectedHeadOid; relbot needs a release that has it to pin auto-merge to the commit it pushed)",
            );
        }
        Err(GitHubError::GraphQl {
            operation: "enablePullRequestAutoMerge",
            message,
        })
    }

    /// Gets `pull` merged as soon as allowed: native auto-merge when the
    /// repository offers it; a direct merge (head sha as precondition) when
    /// GitHub says the PR is already clean, or — without auto-merge — once the
    /// base branch's required checks pass on the head. The caller decides
    /// beforehand whether merging is allowed at all (application health).
    pub async fn request_merge(
        &self,
        pull: &PullRequestInfo,
        method: MergeMethod,
    ) -> Result<MergeOutcome, GitHubError> {
        match self.enable_auto_merge(pull, method).await? {
            AutoMergeOutcome::Enabled => Ok(MergeOutcome::AutoMergeEnabled),
            AutoMergeOutcome::HeadMoved => Err(GitHubError::HeadChanged {
                number: pull.number,
                expected_sha: pull.head_sha.clone(),
                message: "auto-merge was not enabled for a commit relbot did not push".into(),
            }),
            AutoMergeOutcome::AlreadyClean => {
                tracing::info!(
                    number = pull.number,
                    "PR is already clean; merging directly"
                );
                let sha = self.merge_pull(pull.number, &pull.head_sha, method).await?;
                Ok(MergeOutcome::Merged { sha })
            }
            AutoMergeOutcome::Unavailable => {
                let required = self.required_checks(&pull.base_ref).await?;
                let checks = self
                    .combined_status_and_checks(&pull.head_sha, &required)
                    .await?;
                match checks.state {
                    ChecksState::Success => {
                        let sha = self.merge_pull(pull.number, &pull.head_sha, method).await?;
                        Ok(MergeOutcome::Merged { sha })
                    }
                    ChecksState::Pending => Ok(MergeOutcome::WaitingForChecks {
                        pending: checks.pending,
                    }),
                    ChecksState::Failure => Ok(MergeOutcome::ChecksFailed {
                        failing: checks.failing,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified() {
        assert_eq!(
            classify_refusal("Pull request Pull request is in clean status"),
            Some(AutoMergeOutcome::AlreadyClean)
        );
        assert_eq!(
            classify_refusal("Pull request is in clean status"),
            Some(AutoMergeOutcome::AlreadyClean)
        );
        assert_eq!(
            classify_refusal("Pull request Auto merge is not allowed for this repository"),
            Some(AutoMergeOutcome::Unavailable)
        );
        assert_eq!(
            classify_refusal("Pull request Protected branch rules not configured for this branch"),
            Some(AutoMergeOutcome::Unavailable)
        );
        assert_eq!(
            classify_refusal("Could not resolve to a node with the global id of 'x'"),
            None
        );
        assert_eq!(
            classify_refusal(
                "Pull request expected head oid 1111 does not match the current head oid 2222"
            ),
            Some(AutoMergeOutcome::HeadMoved)
        );
        // An old GHES without the argument is a failure, not a moved head.
        assert_eq!(
            classify_refusal(
                "InputObject 'EnablePullRequestAutoMergeInput' doesn't accept argument 'expectedHeadOid'"
            ),
            None
        );
    }

    #[test]
    fn merge_methods_use_graphql_enum_names() {
        assert_eq!(graphql_merge_method(MergeMethod::Squash), "SQUASH");
        assert_eq!(graphql_merge_method(MergeMethod::Merge), "MERGE");
        assert_eq!(graphql_merge_method(MergeMethod::Rebase), "REBASE");
    }
}
