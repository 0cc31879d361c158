//! The repository relbot talks to, as GitHub names it now. A renamed or
//! transferred repository keeps answering at its old name through redirects
//! ([`super::redirect`]); the first time one is followed for a repository
//! path, relbot reads the repository once to learn its new `owner/name`,
//! warns that the configuration names the old one, and uses the new name
//! from then on: no redirect per request, and `head=owner:branch` filters
//! that name the new owner (after a transfer GitHub matches nothing with the
//! old one, and relbot would open duplicate PRs).

use std::sync::RwLock;

use http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::GitHubClient;
use super::error::GitHubError;
use super::transport::RawResponse;

/// `owner` and `name` of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoName {
    pub owner: String,
    pub name: String,
}

/// The current name, shared by clones of one client.
#[derive(Debug)]
pub(crate) struct Location(RwLock<RepoName>);

impl Location {
    pub fn new(owner: String, name: String) -> Self {
        Self(RwLock::new(RepoName { owner, name }))
    }

    pub fn get(&self) -> RepoName {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, name: RepoName) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = name;
    }
}

impl GitHubClient {
    /// `owner/name`, as GitHub names the repository now.
    pub fn repository(&self) -> String {
        let current = self.location.get();
        format!("{}/{}", current.owner, current.name)
    }

    pub(crate) fn owner(&self) -> String {
        self.location.get().owner
    }

    pub(crate) fn repo_path(&self, rest: &str) -> String {
        let current = self.location.get();
        format!("/repos/{}/{}{rest}", current.owner, current.name)
    }

    /// One REST request; a redirect followed for this repository's path
    /// means it moved: learn where to.
    pub(crate) async fn rest(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, GitHubError> {
        let response = self.rest_once(method, path, body).await?;
        if response.redirected && is_under(path, &self.repo_path("")) {
            self.learn_new_name().await;
        }
        Ok(response)
    }

    async fn learn_new_name(&self) {
        #[derive(Deserialize)]
        struct Wire {
            full_name: String,
        }
        let before = self.repository();
        let path = self.repo_path("");
        let learned = match self.rest_once(Method::GET, &path, None).await {
            Ok(r) if r.status == 200 => r.json::<Wire>(&Method::GET, &path).map(|w| w.full_name),
            Ok(r) => Err(r.into_error(&Method::GET, &path)),
            Err(e) => Err(e),
        };
        match learned {
            Ok(full_name) if !full_name.eq_ignore_ascii_case(&before) => {
                let Some((owner, name)) = full_name.split_once('/') else {
                    return;
                };
                self.location.set(RepoName {
                    owner: owner.to_string(),
                    name: name.to_string(),
                });
                tracing::warn!(
                    configured = %before,
                    now = %full_name,
                    "github.repository {before} has moved to {full_name} (renamed or transferred); relbot follows GitHub's redirects and uses the new name, but set github.repository: {full_name} in relbot.yaml"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "could not read the moved repository's new name; redirects are still followed");
            }
        }
    }
}

/// Whether `path` is `repo` itself or below it (not `/repos/a/bc` for `/repos/a/b`).
fn is_under(path: &str, repo: &str) -> bool {
    path.strip_prefix(repo)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_repository() {
        assert!(is_under("/repos/a/b", "/repos/a/b"));
        assert!(is_under("/repos/a/b/pulls?state=open", "/repos/a/b"));
        assert!(!is_under("/repos/a/bc/pulls", "/repos/a/b"));
        assert!(!is_under("/graphql", "/repos/a/b"));
    }
}
