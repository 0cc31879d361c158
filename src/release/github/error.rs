//! The one error type of the GitHub client. Messages say which request
//! failed, GitHub's own explanation, and what to do; they never carry a
//! token (requests are described by method and path only, and GitHub does
//! not echo credentials in its error bodies).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub settings: {0}")]
    Settings(String),

    #[error(
        "GitHub {method} {path}: could not reach the API: {detail} (check github.apiUrl / RELBOT_GITHUB_API_URL and the network)"
    )]
    Transport {
        method: String,
        path: String,
        detail: String,
    },

    #[error("GitHub App authentication failed: {detail}")]
    AppAuth { detail: String },

    #[error("GitHub {method} {path} answered {status}: {message}{hint}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        hint: &'static str,
    },

    #[error(
        "GitHub {method} {path} still answered {status} after {attempts} attempts: {message} (GitHub may be degraded; the next run retries)"
    )]
    RetriesExhausted {
        method: String,
        path: String,
        status: u16,
        attempts: u32,
        message: String,
    },

    #[error(
        "GitHub {method} {path}: rate limited for {wait:?}, longer than the {cap:?} relbot waits within a run (the next run retries)"
    )]
    RateLimited {
        method: String,
        path: String,
        wait: Duration,
        cap: Duration,
    },

    #[error(
        "pull request #{number} was not merged: its head changed from {expected_sha} ({message}); the next run re-reads it"
    )]
    HeadChanged {
        number: u64,
        expected_sha: String,
        message: String,
    },

    #[error(
        "pull request #{number} is not mergeable: {message} (see the PR's checks and branch protection)"
    )]
    NotMergeable { number: u64, message: String },

    #[error(
        "GitHub {method} {path}: {detail} (check github.repository and github.apiUrl / RELBOT_GITHUB_API_URL)"
    )]
    Redirect {
        method: String,
        path: String,
        detail: String,
    },

    #[error("GitHub GraphQL {operation}: {message}")]
    GraphQl {
        operation: &'static str,
        message: String,
    },

    #[error("GitHub {method} {path}: unexpected response body: {detail}")]
    Decode {
        method: String,
        path: String,
        detail: String,
    },
}

impl GitHubError {
    /// The HTTP status GitHub answered, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } | Self::RetriesExhausted { status, .. } => Some(*status),
            Self::HeadChanged { .. } => Some(409),
            Self::NotMergeable { .. } => Some(405),
            _ => None,
        }
    }
}

/// A short "what to do" for common statuses.
pub(crate) fn hint_for(status: u16) -> &'static str {
    match status {
        401 => {
            " (the token is invalid or expired: check RELBOT_GITHUB_TOKEN or the GitHub App key)"
        }
        403 => {
            " (the token lacks permission: it needs contents, pull-requests and checks access to the repository)"
        }
        404 => " (check github.repository, and that the token can see the repository)",
        422 => " (GitHub rejected the request as invalid)",
        _ => "",
    }
}
