//! The client itself: one HTTP connection pool, the caches that keep request
//! counts low, and [`RegistryClient::send`], which every call goes through
//! (authentication, 429/5xx back-off, `Retry-After` shared across calls).
//! What it asks for lives in `tags.rs` and `manifest.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use super::auth::{Authenticator, Target};
use super::backoff;
use super::credentials::RegistryCredentials;
use super::error::{RegistryError, status_error, transport, unauthorized};
use super::pagination::CachedPage;
use super::settings::RegistrySettings;
use super::stats::{RegistryStats, bump};
use super::token::AuthState;
use crate::image::ImageRef;

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) pages: HashMap<String, CachedPage>,
    /// Origins that told us to wait (429 + Retry-After) until then.
    blocked_until: HashMap<String, Instant>,
    /// Last `ratelimit-remaining` per origin.
    remaining: HashMap<String, u64>,
}

/// Talks to any number of registries; share one per process (`Arc`): the
/// token, ETag and back-off state is what keeps request counts low.
pub struct RegistryClient {
    http: reqwest::Client,
    pub(super) settings: RegistrySettings,
    credentials: RegistryCredentials,
    auth_state: AuthState,
    state: Mutex<State>,
    pub(super) stats: RegistryStats,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("settings", &self.settings)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

pub(super) struct Request<'a> {
    pub(super) image: &'a ImageRef,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) accept: Option<String>,
    pub(super) if_none_match: Option<String>,
}

impl RegistryClient {
    pub fn new(
        settings: RegistrySettings,
        credentials: RegistryCredentials,
    ) -> Result<Self, RegistryError> {
        crate::tls::init();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("relbot/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(transport(&"(client setup)"))?;
        Ok(Self {
            http,
            settings,
            credentials,
            auth_state: AuthState::default(),
            state: Mutex::new(State::default()),
            stats: RegistryStats::default(),
        })
    }

    pub fn stats(&self) -> &RegistryStats {
        &self.stats
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Last `ratelimit-remaining` a registry reported (Docker Hub sends it).
    pub fn ratelimit_remaining(&self, image: &ImageRef) -> Option<u64> {
        let origin = self.settings.base_url(image);
        self.lock().remaining.get(&origin).copied()
    }

    /// Sends with auth, waiting out and retrying 429/5xx within the policy.
    /// Returns any other answer (the caller judges 404, 304…).
    pub(super) async fn send(
        &self,
        request: &Request<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        let origin = origin_of(&request.url);
        let host = request.url.host_str().unwrap_or_default().to_string()
            + &request
                .url
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
        let scope = format!("repository:{}:pull", request.image.repository);
        let retry = &self.settings.retry;
        let mut attempt: u32 = 0;
        let target = Target {
            image: request.image,
            origin: &origin,
            host: &host,
            scope: &scope,
        };
        let mut challenged = false;
        loop {
            self.wait_for_origin(&origin, &host).await?;
            let authorization = self.auth().authorization(&target).await?;
            let mut builder = self
                .http
                .request(request.method.clone(), request.url.clone());
            if let Some(accept) = &request.accept {
                builder = builder.header(ACCEPT, accept);
            }
            if let Some(etag) = &request.if_none_match {
                builder = builder.header(IF_NONE_MATCH, etag);
            }
            let sent_bearer = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::to_string);
            if let Some(value) = authorization {
                builder = builder.header(AUTHORIZATION, value);
            }
            bump(&self.stats.requests);
            let response = match builder.send().await {
                Ok(response) => response,
                // A dropped connection or a timeout is worth another try; a
                // refused one at a bad address fails the same way each time
                // but costs nothing, and the retries stay bounded.
                Err(source)
                    if (source.is_connect() || source.is_timeout())
                        && attempt < retry.max_retries =>
                {
                    tracing::debug!(url = %request.url, error = %source, "registry unreachable, retrying");
                    bump(&self.stats.retries);
                    tokio::time::sleep(retry.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(source) => return Err(transport(&request.url)(source)),
            };
            crate::clock::observe(crate::clock::Peer::Registry, response.headers());
            self.note_ratelimit(&origin, response.headers());
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                // A token the registry no longer takes (revoked, or its clock
                // disagrees with ours) must not be offered again.
                if let Some(token) = &sent_bearer {
                    self.auth_state.forget_token(token);
                }
                self.auth().learn_challenge(&target, response.headers())?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                // Docker Hub answers 401, not 404, for a repository that does not exist.
                let mut reason = format!(
                    "HTTP {}: wrong or missing credentials, or no such repository",
                    status.as_u16()
                );
                // Registry tokens expire: a clock far off refuses fresh ones.
                if let Some(hint) =
                    crate::clock::refusal_hint(crate::clock::Peer::Registry, status.as_u16(), "")
                {
                    reason = format!("{reason}; {hint}");
                }
                return Err(unauthorized(request.image, &host, &reason));
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if !retryable {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| backoff::parse_retry_after(v, SystemTime::now()));
            let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
            if rate_limited {
                bump(&self.stats.rate_limit_waits);
            }
            let wait = retry_after.unwrap_or_else(|| retry.backoff(attempt));
            if attempt >= retry.max_retries || wait > retry.max_wait {
                if rate_limited {
                    if let Some(wait) = retry_after {
                        self.lock()
                            .blocked_until
                            .insert(origin.clone(), Instant::now() + wait);
                    }
                    return Err(RegistryError::RateLimited {
                        host: host.clone(),
                        retry_after,
                    });
                }
                return Err(status_error(&request.url, response, attempt + 1).await);
            }
            if rate_limited {
                // Every other call to this origin waits too, not just this one.
                self.lock()
                    .blocked_until
                    .insert(origin.clone(), Instant::now() + wait);
            }
            tracing::debug!(url = %request.url, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "registry asked us to back off");
            drop(response);
            bump(&self.stats.retries);
            attempt += 1;
            if !rate_limited {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Sleeps until an origin's `Retry-After` has passed, or fails at once if
    /// that is further away than we are willing to wait.
    async fn wait_for_origin(&self, origin: &str, host: &str) -> Result<(), RegistryError> {
        let until = self.lock().blocked_until.get(origin).copied();
        let Some(until) = until else { return Ok(()) };
        let now = Instant::now();
        if until <= now {
            self.lock().blocked_until.remove(origin);
            return Ok(());
        }
        let wait = until - now;
        if wait > self.settings.retry.max_wait {
            return Err(RegistryError::RateLimited {
                host: host.to_string(),
                retry_after: Some(wait),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn note_ratelimit(&self, origin: &str, headers: &HeaderMap) {
        let Some(remaining) = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(backoff::parse_ratelimit_remaining)
        else {
            return;
        };
        if remaining < 10 {
            tracing::warn!(
                registry = origin,
                remaining,
                "registry rate limit nearly used up"
            );
        }
        self.lock().remaining.insert(origin.to_string(), remaining);
    }

    fn auth(&self) -> Authenticator<'_> {
        Authenticator {
            http: &self.http,
            credentials: &self.credentials,
            state: &self.auth_state,
            stats: &self.stats,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds caches only; a panic elsewhere cannot leave it invalid.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}
