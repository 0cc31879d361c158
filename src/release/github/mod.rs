//! The GitHub client for version-bump pull requests: find, open, update,
//! supersede and merge PRs, and enable native auto-merge.
//!
//! Built on octocrab for authentication (token, or GitHub App JWT →
//! installation token, refreshed by octocrab) and connection handling; every
//! call goes through octocrab's raw `_get`/`_post`/… with GitHub's real paths
//! so this module sees status codes and headers and can:
//! - retry 5xx and connection failures with bounded exponential backoff;
//! - wait out primary and secondary rate limits (`retry-after`,
//!   `x-ratelimit-remaining: 0` + `x-ratelimit-reset`), capped per request;
//! - reuse the open PR when creation answers 422 "A pull request already
//!   exists" (for example after a retried POST that did land);
//! - report a 409 on merge as "the head changed".
//!
//! What to do with a policy's PRs is decided by the pure [`decide`] (see
//! [`decision`] for the rules, including how superseded and human-closed PRs
//! are told apart). The API base URL is configurable for GitHub Enterprise
//! (`https://host/api/v3`, whose GraphQL lives at `https://host/api/graphql`)
//! and for tests.

mod checks;
mod clients;
pub mod decision;
mod error;
mod graphql;
mod location;
mod pages;
mod redirect;
mod request;
mod rest;
pub mod statuses;
mod transport;
mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clients::{Clients, GraphqlAuth};
use location::Location;
use octocrab::Octocrab;
use octocrab::secrecy::SecretString;

pub use decision::{
    PrAction, PrMarker, PrPlan, branch_for_policy, decide, decide_revert, same_version,
};
pub use error::GitHubError;
pub use types::*;

use crate::config::GithubConfig;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How relbot authenticates. `Debug` never shows the secret parts.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal access token or fine-grained token.
    Token(SecretString),
    /// A GitHub App: a JWT signed with the key buys installation tokens.
    App {
        app_id: u64,
        private_key_pem: SecretString,
        installation_id: u64,
    },
}

impl GitHubAuth {
    /// `RELBOT_GITHUB_TOKEN`, else `RELBOT_GITHUB_APP_ID` +
    /// `RELBOT_GITHUB_APP_INSTALLATION_ID` + `RELBOT_GITHUB_APP_PRIVATE_KEY`
    /// (PEM text) or `RELBOT_GITHUB_APP_PRIVATE_KEY_FILE` (a mounted Secret).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, GitHubError> {
        if let Some(token) = env("RELBOT_GITHUB_TOKEN").filter(|t| !t.trim().is_empty()) {
            return Ok(Self::Token(SecretString::from(token.trim().to_string())));
        }
        let Some(app_id) = env("RELBOT_GITHUB_APP_ID") else {
            return Err(GitHubError::Settings(
                "no GitHub credentials: set RELBOT_GITHUB_TOKEN, or RELBOT_GITHUB_APP_ID, RELBOT_GITHUB_APP_INSTALLATION_ID and RELBOT_GITHUB_APP_PRIVATE_KEY(_FILE)".into(),
            ));
        };
        let number = |name: &str, value: Option<String>| -> Result<u64, GitHubError> {
            let value = value.ok_or_else(|| {
                GitHubError::Settings(format!(
                    "{name} is not set (needed with RELBOT_GITHUB_APP_ID)"
                ))
            })?;
            value.trim().parse().map_err(|_| {
                GitHubError::Settings(format!("{name} must be a number, got {value:?}"))
            })
        };
        let app_id = number("RELBOT_GITHUB_APP_ID", Some(app_id))?;
        let installation_id = number(
            "RELBOT_GITHUB_APP_INSTALLATION_ID",
            env("RELBOT_GITHUB_APP_INSTALLATION_ID"),
        )?;
        let pem = match (
            env("RELBOT_GITHUB_APP_PRIVATE_KEY"),
            env("RELBOT_GITHUB_APP_PRIVATE_KEY_FILE"),
        ) {
            (Some(pem), _) => pem,
            (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| {
                GitHubError::Settings(format!(
                    "cannot read RELBOT_GITHUB_APP_PRIVATE_KEY_FILE {path}: {e}"
                ))
            })?,
            (None, None) => {
                return Err(GitHubError::Settings(
                    "RELBOT_GITHUB_APP_PRIVATE_KEY or RELBOT_GITHUB_APP_PRIVATE_KEY_FILE is not set (needed with RELBOT_GITHUB_APP_ID)".into(),
                ));
            }
        };
        Ok(Self::App {
            app_id,
            private_key_pem: SecretString::from(pem),
            installation_id,
        })
    }
}

/// Bounds on retrying and waiting, per request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts for 5xx and connection failures (1 = no retry).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Rate-limit waits per request before giving up.
    pub max_rate_limit_waits: u32,
    /// The longest single rate-limit wait; longer ones fail the request.
    pub rate_limit_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            max_rate_limit_waits: 2,
            rate_limit_cap: Duration::from_secs(90),
        }
    }
}

/// Everything needed to talk to one repository.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub api_url: String,
    /// `owner/name`.
    pub repository: String,
    pub auth: GitHubAuth,
    pub retry: RetryPolicy,
}

impl GithubSettings {
    /// From `relbot.yaml`'s `github:` and the environment
    /// (`RELBOT_GITHUB_API_URL` overrides `github.apiUrl`).
    pub fn from_config(
        config: &GithubConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GitHubError> {
        let api_url = env("RELBOT_GITHUB_API_URL")
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Ok(Self {
            api_url,
            repository: config.repository.clone(),
            auth: GitHubAuth::from_env(env)?,
            retry: RetryPolicy::default(),
        })
    }
}

/// Counters for `/metrics`; shared, cheap to bump.
#[derive(Debug, Default)]
pub struct GitHubStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limit_waits: AtomicU64,
    pub prs_opened: AtomicU64,
    pub prs_updated: AtomicU64,
    pub prs_closed: AtomicU64,
    pub prs_merged: AtomicU64,
    pub automerge_enabled: AtomicU64,
    /// Pull request listings cut short by their page bound.
    pub listings_truncated: AtomicU64,
}

/// A point-in-time copy of [`GitHubStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GitHubStatsSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub rate_limit_waits: u64,
    pub prs_opened: u64,
    pub prs_updated: u64,
    pub prs_closed: u64,
    pub prs_merged: u64,
    pub automerge_enabled: u64,
    pub listings_truncated: u64,
}

impl GitHubStats {
    pub fn snapshot(&self) -> GitHubStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GitHubStatsSnapshot {
            requests: get(&self.requests),
            retries: get(&self.retries),
            rate_limit_waits: get(&self.rate_limit_waits),
            prs_opened: get(&self.prs_opened),
            prs_updated: get(&self.prs_updated),
            prs_closed: get(&self.prs_closed),
            prs_merged: get(&self.prs_merged),
            automerge_enabled: get(&self.automerge_enabled),
            listings_truncated: get(&self.listings_truncated),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A client bound to one repository.
#[derive(Clone)]
pub struct GitHubClient {
    rest: Arc<Octocrab>,
    graphql: Arc<Octocrab>,
    graphql_auth: GraphqlAuth,
    /// `scheme://host[:port]` of the API: redirects may go nowhere else.
    api_origin: String,
    location: Arc<Location>,
    retry: RetryPolicy,
    stats: Arc<GitHubStats>,
    list_pages: ListPages,
}

/// How many pages of pull requests a listing reads before it stops.
#[derive(Debug, Clone, Copy)]
struct ListPages {
    open: usize,
    history: usize,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("repository", &self.repository())
            .finish_non_exhaustive()
    }
}

impl GitHubClient {
    /// Builds the client. Must run inside a Tokio runtime (octocrab spawns
    /// its connection worker there).
    pub fn new(settings: GithubSettings) -> Result<Self, GitHubError> {
        crate::tls::init();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GitHubError::Settings(
                "GitHubClient::new must be called inside a Tokio runtime".into(),
            ));
        }
        let (owner, repo) = settings
            .repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .map(|(o, r)| (o.to_string(), r.to_string()))
            .ok_or_else(|| {
                GitHubError::Settings(format!(
                    "github.repository must be owner/name, got {:?}",
                    settings.repository
                ))
            })?;
        let api_url = settings.api_url.trim_end_matches('/').to_string();
        let clients = Clients::build(&api_url, &settings.auth)?;
        let api_origin = redirect::origin_of(&api_url).ok_or_else(|| {
            GitHubError::Settings(format!(
                "github.apiUrl {api_url:?} needs a scheme and host (https://api.github.com, https://ghe.example.com/api/v3)"
            ))
        })?;
        Ok(Self {
            rest: clients.rest,
            graphql: clients.graphql,
            graphql_auth: clients.graphql_auth,
            api_origin,
            location: Arc::new(Location::new(owner, repo)),
            retry: settings.retry,
            stats: Arc::new(GitHubStats::default()),
            list_pages: ListPages {
                open: rest::OPEN_PULL_PAGES,
                history: rest::BRANCH_HISTORY_PAGES,
            },
        })
    }

    /// Bounds every pull request listing to `pages` pages of 100 (the
    /// defaults: every open PR up to 100 pages, a branch's history 10).
    pub fn with_list_page_limit(mut self, pages: usize) -> Self {
        let pages = pages.max(1);
        self.list_pages = ListPages {
            open: pages,
            history: pages,
        };
        self
    }

    /// Shares counters with other clients (one set per process for metrics).
    pub fn with_stats(mut self, stats: Arc<GitHubStats>) -> Self {
        self.stats = stats;
        self
    }

    pub fn stats(&self) -> &Arc<GitHubStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn token_auth_from_env_and_debug_hides_it() {
        let auth =
            GitHubAuth::from_env(env(&[("RELBOT_GITHUB_TOKEN", "ghp_supersecret")])).unwrap();
        assert!(matches!(auth, GitHubAuth::Token(_)));
        assert!(!format!("{auth:?}").contains("supersecret"));
    }

    #[test]
    fn app_auth_from_env_needs_all_parts() {
        let err = GitHubAuth::from_env(env(&[("RELBOT_GITHUB_APP_ID", "12")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("RELBOT_GITHUB_APP_INSTALLATION_ID"),
            "{err}"
        );
        let err = GitHubAuth::from_env(env(&[("RELBOT_GITHUB_APP_ID", "x")])).unwrap_err();
        assert!(err.to_string().contains("must be a number"), "{err}");
        let auth = GitHubAuth::from_env(env(&[
            ("RELBOT_GITHUB_APP_ID", "12"),
            ("RELBOT_GITHUB_APP_INSTALLATION_ID", "34"),
            (
                "RELBOT_GITHUB_APP_PRIVATE_KEY",
                "-----BEGIN RSA PRIVATE KEY-----secret",
            ),
        ]))
        .unwrap();
        assert!(matches!(
            auth,
            GitHubAuth::App {
                app_id: 12,
                installation_id: 34,
                ..
            }
        ));
        assert!(!format!("{auth:?}").contains("secret-"));
        let err = GitHubAuth::from_env(env(&[])).unwrap_err();
        assert!(err.to_string().contains("RELBOT_GITHUB_TOKEN"), "{err}");
    }

    #[test]
    fn settings_prefer_env_api_url() {
        let config = GithubConfig {
            repository: "acme/cluster-config".into(),
            api_url: Some("https://ghe.example.com/api/v3".into()),
            automerge: true,
            merge_method: MergeMethod::Squash,
            base_branch: None,
            commit_author: Default::default(),
            labels: vec![],
            commit_statuses: false,
            status_page_url: None,
        };
        let s = GithubSettings::from_config(&config, env(&[("RELBOT_GITHUB_TOKEN", "t")])).unwrap();
        assert_eq!(s.api_url, "https://ghe.example.com/api/v3");
        let s = GithubSettings::from_config(
            &config,
            env(&[
                ("RELBOT_GITHUB_TOKEN", "t"),
                ("RELBOT_GITHUB_API_URL", "http://127.0.0.1:9"),
            ]),
        )
        .unwrap();
        assert_eq!(s.api_url, "http://127.0.0.1:9");
    }

    #[tokio::test]
    async fn repository_must_be_owner_slash_name() {
        crate::tls::init();
        let settings = |repository: &str| GithubSettings {
            api_url: "http://127.0.0.1:9".into(),
            repository: repository.into(),
            auth: GitHubAuth::Token(SecretString::from("t".to_string())),
            retry: RetryPolicy::default(),
        };
        assert!(GitHubClient::new(settings("acme")).is_err());
        assert!(GitHubClient::new(settings("acme/a/b")).is_err());
        assert_eq!(
            GitHubClient::new(settings("acme/repo"))
                .unwrap()
                .repository(),
            "acme/repo"
        );
    }
}
