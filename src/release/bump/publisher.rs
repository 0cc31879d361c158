//! What a publishing bump run talks to — the GitHub client, the working
//! clone and the applications' health — built from relbot.yaml the same way
//! for `relbot bump` and `relbot serve`.

use std::path::PathBuf;

use super::error::BumpError;
use super::health::{HealthSource, NoHealth};
use super::workspace::Workspace;
use crate::config::Config;
use crate::release::github::{GitHubClient, GitHubError, GithubSettings};
use crate::source::git::GitCredentials;

/// Everything a publishing run talks to. A dry run given one only reads
/// (GitHub's PR history and the health) to say what rollback and hold
/// would do.
pub struct Publisher<'a> {
    pub github: GitHubClient,
    pub workspace: Workspace,
    pub health: &'a dyn HealthSource,
}

/// Why no publisher could be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("relbot.yaml has no `github:` section; publishing bumps needs github.repository")]
    NoGithubSection,
    #[error("relbot.yaml has no `repo:` section; publishing bumps needs repo.url to push to")]
    NoRepoSection,
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// The working clone's settings (its URL or directory).
    #[error(transparent)]
    Workspace(#[from] BumpError),
}

impl PublisherError {
    /// A section of relbot.yaml is missing (a dry run does without it).
    pub fn is_missing_section(&self) -> bool {
        matches!(self, Self::NoGithubSection | Self::NoRepoSection)
    }
}

impl Publisher<'static> {
    /// The GitHub client from `github:` and the environment's token, and the
    /// working clone of `repo:` in `work_dir`, following the branch bump PRs
    /// target (`github.baseBranch`, else `repo.branch`). Health starts
    /// unknown (which never holds a merge back); see [`Publisher::with_health`].
    /// Must run inside a Tokio runtime (the GitHub client needs one).
    pub fn from_config(config: &Config, work_dir: PathBuf) -> Result<Self, PublisherError> {
        let github_config = config
            .github
            .as_ref()
            .ok_or(PublisherError::NoGithubSection)?;
        let repo = config.repo.as_ref().ok_or(PublisherError::NoRepoSection)?;
        let settings = GithubSettings::from_config(github_config, |name| std::env::var(name).ok())?;
        let github = GitHubClient::new(settings)?;
        let base = github_config
            .base_branch
            .clone()
            .unwrap_or_else(|| repo.branch.clone());
        let workspace = Workspace::new(work_dir, repo, &base, GitCredentials::from_env())?;
        Ok(Publisher {
            github,
            workspace,
            health: &NoHealth,
        })
    }
}

impl Publisher<'_> {
    /// The same clients, reading application health from `health`.
    pub fn with_health(self, health: &dyn HealthSource) -> Publisher<'_> {
        Publisher {
            github: self.github,
            workspace: self.workspace,
            health,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_saphyr::from_str(yaml).expect("config")
    }

    #[tokio::test]
    async fn a_missing_section_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let no_github = Publisher::from_config(
            &config("repo: { url: file:///tmp/x }\napplications: []\n"),
            dir.path().join("bump"),
        );
        assert!(matches!(no_github, Err(PublisherError::NoGithubSection)));
        let no_repo = Publisher::from_config(
            &config("github: { repository: o/r }\napplications: []\n"),
            dir.path().join("bump"),
        );
        let error = no_repo.err().expect("no repo section");
        assert!(error.is_missing_section());
        assert!(error.to_string().contains("`repo:`"), "{error}");
    }
}
