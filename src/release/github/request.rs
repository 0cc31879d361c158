//! How a [`GitHubClient`] sends one request: REST through the REST client
//! with redirects followed, GraphQL through the GraphQL client with the
//! credentials [`super::clients`] chose for it. Retries and rate limits are
//! the transport's.

use http::Method;
use serde_json::Value;

use super::GitHubClient;
use super::clients::{GraphqlAuth, installation_bearer};
use super::error::GitHubError;
use super::redirect;
use super::transport::{RawResponse, Sender};

impl GitHubClient {
    /// One REST request, redirects followed (see [`super::redirect`]).
    pub(crate) async fn rest_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, GitHubError> {
        let sender = Sender {
            crab: &self.rest,
            authorization: None,
            policy: &self.retry,
            stats: &self.stats,
        };
        redirect::follow(&sender, &self.api_origin, method, path, body).await
    }

    pub(crate) async fn graphql_raw(&self, body: &Value) -> Result<RawResponse, GitHubError> {
        let authorization = match self.graphql_auth {
            GraphqlAuth::Own => None,
            GraphqlAuth::RestInstallationToken => Some(installation_bearer(&self.rest).await?),
        };
        Sender {
            crab: &self.graphql,
            authorization,
            policy: &self.retry,
            stats: &self.stats,
        }
        .send(Method::POST, "/graphql", Some(body))
        .await
    }
}
