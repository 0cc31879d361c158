//! The token flow: reading a registry's `WWW-Authenticate` challenge, and
//! the `Authorization` each request carries (basic credentials, or a bearer
//! token fetched from the registry's token service and kept in
//! [`AuthState`]). Nothing here ever logs a password or token.

use std::collections::HashMap;
use std::time::Instant;

use reqwest::header::{AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};

use super::credentials::{Credential, RegistryCredentials};
use super::error::{RegistryError, transport, unauthorized};
use super::stats::{RegistryStats, bump};
use super::token::{AuthState, HostAuth, TokenKey, TokenResponse};
use crate::image::{self, ImageRef};

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`
/// or `Basic realm="Registry"`. Unknown schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(params);
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let realm = params.get("realm")?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    None
}

/// `a="x, y",b=z` → {a: "x, y", b: "z"}; keys lower-cased.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// One request as authentication sees it.
pub struct Target<'a> {
    pub image: &'a ImageRef,
    /// `scheme://host[:port]`, the key of what is learnt.
    pub origin: &'a str,
    /// `host[:port]`, the key of credentials.
    pub host: &'a str,
    /// `repository:<name>:pull`.
    pub scope: &'a str,
}

/// Borrows what the client owns to authenticate its requests.
pub struct Authenticator<'a> {
    pub http: &'a reqwest::Client,
    pub credentials: &'a RegistryCredentials,
    pub state: &'a AuthState,
    pub stats: &'a RegistryStats,
}

impl Authenticator<'_> {
    /// The `Authorization` value for a request, if this origin needs one:
    /// basic credentials, or a cached (else freshly fetched) bearer token.
    pub async fn authorization(
        &self,
        target: &Target<'_>,
    ) -> Result<Option<String>, RegistryError> {
        let (host_auth, scope) = self.state.scheme_and_scope(target.origin, target.scope);
        let scope = scope.as_str();
        match host_auth {
            None => Ok(None),
            Some(HostAuth::Basic) => match self.credentials.get(target.host) {
                Some(c) => Ok(Some(basic_value(c))),
                None => Err(unauthorized(
                    target.image,
                    target.host,
                    "the registry asks for a username and password",
                )),
            },
            Some(HostAuth::Bearer { realm, service }) => {
                let key = TokenKey::new(&realm, &service, scope);
                let token = match self.state.token(&key, Instant::now()) {
                    Some(token) => token,
                    None => self.fetch_token(target, key).await?,
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Learns from a 401's `WWW-Authenticate` how `target`'s origin wants to
    /// be authenticated.
    pub fn learn_challenge(
        &self,
        target: &Target<'_>,
        headers: &HeaderMap,
    ) -> Result<(), RegistryError> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .collect();
        // Prefer bearer: it is what Docker Hub, GHCR and Quay speak.
        let chosen = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or_else(|| challenges.first())
            .cloned();
        match chosen {
            Some(Challenge::Bearer {
                realm,
                service,
                scope: challenge_scope,
            }) => {
                // The registry names the scope it wants; ask for exactly that from now on.
                self.state.learn_bearer(
                    target.origin,
                    realm,
                    service.unwrap_or_default(),
                    target.scope,
                    challenge_scope,
                );
                Ok(())
            }
            Some(Challenge::Basic) => {
                if self.credentials.get(target.host).is_none() {
                    return Err(unauthorized(
                        target.image,
                        target.host,
                        "the registry asks for a username and password",
                    ));
                }
                self.state.learn_basic(target.origin);
                Ok(())
            }
            None => Err(unauthorized(
                target.image,
                target.host,
                "401 without a usable WWW-Authenticate challenge",
            )),
        }
    }

    async fn fetch_token(
        &self,
        target: &Target<'_>,
        key: TokenKey,
    ) -> Result<String, RegistryError> {
        let (realm, service, scope) =
            (key.realm.as_str(), key.service.as_str(), key.scope.as_str());
        let host = target.host;
        let token_error = |reason: String| RegistryError::Token {
            image: target.image.name(),
            host: host.to_string(),
            realm: realm.to_string(),
            reason,
        };
        let mut url =
            Url::parse(realm).map_err(|e| token_error(format!("an invalid realm URL ({e})")))?;
        let credential = self.credentials.get(host);
        let realm_host = url.host_str().unwrap_or_default().to_string();
        if credential.is_some() && url.scheme() != "https" && !image::is_loopback(&realm_host) {
            return Err(token_error(
                "a plain-http realm; refusing to send credentials there".into(),
            ));
        }
        {
            let mut query = url.query_pairs_mut();
            if !service.is_empty() {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut builder = self.http.get(url.clone());
        if let Some(c) = credential {
            builder = builder.header(AUTHORIZATION, basic_value(c));
        }
        bump(&self.stats.token_requests);
        let response = builder.send().await.map_err(transport(&realm))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(unauthorized(
                target.image,
                host,
                &format!("token service {realm} answered HTTP {}", status.as_u16()),
            ));
        }
        if !status.is_success() {
            return Err(token_error(format!("HTTP {}", status.as_u16())));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| token_error(format!("a body that is not a token ({e})")))?;
        let (token, lifetime) = body
            .into_token()
            .ok_or_else(|| token_error("no token in its answer".into()))?;
        self.state
            .store_token(key, token.clone(), lifetime, Instant::now());
        Ok(token)
    }
}

fn basic_value(c: &Credential) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
    }

    #[test]
    fn parses_basic_and_unquoted_and_spaced_params() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        let c = parse_challenge(
            r#"bearer realm=https://ghcr.io/token, service="ghcr.io", scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "a bearer challenge needs a realm"
        );
    }
}
