//! Commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}`, how relbot
//! reports each sync of a revision on the commit itself.

use http::Method;
use serde_json::json;

use super::GitHubClient;
use super::error::GitHubError;

/// GitHub's four states for a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Error,
}

impl CommitState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        }
    }
}

/// GitHub refuses a description over 140 characters.
pub const DESCRIPTION_MAX: usize = 140;

/// `text` on one line, at most [`DESCRIPTION_MAX`] characters.
pub fn one_line_description(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= DESCRIPTION_MAX {
        return line;
    }
    let mut cut: String = line.chars().take(DESCRIPTION_MAX - 1).collect();
    cut.push('…');
    cut
}

impl GitHubClient {
    /// Sets `context`'s status on commit `sha` (a later one replaces it).
    pub async fn create_commit_status(
        &self,
        sha: &str,
        state: CommitState,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("/statuses/{sha}"));
        let mut body = json!({
            "state": state.as_str(),
            "context": context,
            "description": one_line_description(description),
        });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        let response = self.rest(Method::POST, &path, Some(&body)).await?;
        match response.status {
            200 | 201 => Ok(()),
            _ => Err(response.into_error(&Method::POST, &path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_one_line_and_fit_githubs_limit() {
        assert_eq!(one_line_description("a\n  b\tc"), "a b c");
        let long = one_line_description(&"é".repeat(500));
        assert_eq!(long.chars().count(), DESCRIPTION_MAX);
        assert!(long.ends_with('…'));
    }
}
