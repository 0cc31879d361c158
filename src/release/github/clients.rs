//! The octocrab clients behind [`super::GitHubClient`]: one for REST, one for
//! GraphQL, and how GraphQL requests get their credentials.
//!
//! GitHub Enterprise Server serves REST under `https://host/api/v3` and
//! GraphQL at `https://host/api/graphql`, so the GraphQL client has its own
//! base URL. octocrab mints a GitHub App's installation token relative to a
//! client's base URL: a GraphQL client based at `/api` would mint at
//! `/api/app/installations/…`, which GHES does not serve. So with an App on
//! GHES the GraphQL client carries no credentials of its own and each
//! GraphQL request is sent with the REST client's installation token (minted
//! at `/api/v3/app/installations/…`, cached and renewed by octocrab, one
//! token for both).

use std::sync::Arc;

use http::HeaderValue;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::secrecy::ExposeSecret;

use super::GitHubAuth;
use super::error::GitHubError;
use super::transport::{AttemptError, describe_octocrab_error};

/// Where a GraphQL request's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphqlAuth {
    /// The GraphQL client's own (a token; or the REST client itself when
    /// both share one base URL, as on github.com).
    Own,
    /// The REST client's App installation token, sent per request.
    RestInstallationToken,
}

pub(crate) struct Clients {
    pub rest: Arc<Octocrab>,
    pub graphql: Arc<Octocrab>,
    pub graphql_auth: GraphqlAuth,
}

impl Clients {
    /// `api_url` without a trailing slash.
    pub fn build(api_url: &str, auth: &GitHubAuth) -> Result<Self, GitHubError> {
        let rest = Arc::new(build_octocrab(api_url, Some(auth))?);
        let graphql_base = graphql_base_url(api_url);
        if graphql_base == api_url {
            return Ok(Self {
                graphql: Arc::clone(&rest),
                rest,
                graphql_auth: GraphqlAuth::Own,
            });
        }
        let (graphql, graphql_auth) = match auth {
            GitHubAuth::Token(_) => (build_octocrab(&graphql_base, Some(auth))?, GraphqlAuth::Own),
            GitHubAuth::App { .. } => (
                build_octocrab(&graphql_base, None)?,
                GraphqlAuth::RestInstallationToken,
            ),
        };
        Ok(Self {
            rest,
            graphql: Arc::new(graphql),
            graphql_auth,
        })
    }
}

/// The `Authorization` value for a GraphQL request under `RestInstallationToken`.
pub(crate) async fn installation_bearer(rest: &Octocrab) -> Result<HeaderValue, GitHubError> {
    let token = rest
        .installation_token()
        .await
        .map_err(|e| match describe_octocrab_error(&e) {
            AttemptError::AppToken(detail) => GitHubError::AppAuth { detail },
            AttemptError::Transport(detail) => GitHubError::Transport {
                method: "POST".into(),
                path: "/app/installations/…/access_tokens".into(),
                detail,
            },
        })?;
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            GitHubError::AppAuth {
                detail: "GitHub minted an installation token that is not a valid header value"
                    .into(),
            }
        })?;
    value.set_sensitive(true);
    Ok(value)
}

fn build_octocrab(api_url: &str, auth: Option<&GitHubAuth>) -> Result<Octocrab, GitHubError> {
    let bad_url =
        |_| GitHubError::Settings(format!("github.apiUrl {api_url:?} is not a valid URL"));
    let builder = Octocrab::builder().base_uri(api_url).map_err(bad_url)?;
    let built = match auth {
        None => builder.build(),
        Some(GitHubAuth::Token(token)) => builder
            .personal_token(token.expose_secret().to_string())
            .build(),
        Some(GitHubAuth::App {
            app_id,
            private_key_pem,
            installation_id,
        }) => {
            let key = octocrab::jsonwebtoken::EncodingKey::from_rsa_pem(
                private_key_pem.expose_secret().as_bytes(),
            )
            .map_err(|_| {
                GitHubError::Settings(
                    "the GitHub App private key is not a valid RSA PEM key".into(),
                )
            })?;
            let app = builder
                .app(AppId(*app_id), key)
                .build()
                .map_err(|e| GitHubError::Settings(format!("GitHub App client: {e}")))?;
            app.installation(InstallationId(*installation_id))
        }
    };
    built.map_err(|e| {
        GitHubError::Settings(format!("building the GitHub client for {api_url}: {e}"))
    })
}

/// GitHub.com serves GraphQL at `/graphql` next to REST; GitHub Enterprise
/// serves REST under `/api/v3` and GraphQL at `/api/graphql`.
pub(crate) fn graphql_base_url(api_url: &str) -> String {
    match api_url.strip_suffix("/v3") {
        Some(base) if base.ends_with("/api") => base.to_string(),
        _ => api_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_url_for_github_and_enterprise() {
        assert_eq!(
            graphql_base_url("https://api.github.com"),
            "https://api.github.com"
        );
        assert_eq!(
            graphql_base_url("https://ghe.example.com/api/v3"),
            "https://ghe.example.com/api"
        );
        assert_eq!(
            graphql_base_url("http://127.0.0.1:4000"),
            "http://127.0.0.1:4000"
        );
    }
}
