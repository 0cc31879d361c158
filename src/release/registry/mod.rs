//! OCI distribution v2 client: the tags of an image and a tag's manifest
//! digest, nothing more (no pulls, no pushes).
//!
//! - `GET /v2/<name>/tags/list?n=` following `Link: <…>; rel="next"` only
//!   within the same origin, at most `max_pages` pages;
//! - anonymous, basic and bearer-token auth learned from the
//!   `WWW-Authenticate` challenge; tokens cached until `expires_in`, and once
//!   a host's scheme is known we authenticate up front (one request per page);
//! - 429 and 5xx: bounded retries honouring `Retry-After` (seconds or date),
//!   otherwise exponential backoff with jitter; a host that asked us to wait
//!   is not contacted again before that time, by any call;
//! - ETag/`If-None-Match` per page: an unchanged list costs a 304 per page;
//! - manifest digests by `HEAD` (which Docker Hub does not count as a pull);
//! - loopback registries over plain HTTP (as docker does), every other host
//!   over HTTPS unless configured `insecure`; mirrors per host.

pub mod auth;
pub mod backoff;
pub mod pagination;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, ETAG, HeaderMap, IF_NONE_MATCH, LINK, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};

pub use crate::image::{
    ImageRef, ReferenceError, SplitReference, same_repository, split_reference,
};
pub use auth::{Credential, CredentialsError, RegistryCredentials};
pub use backoff::RetryPolicy;

use crate::config::RegistryConfig;
use crate::image;
use auth::{Challenge, TokenCache, TokenResponse, parse_challenge};

/// Manifest media types we accept on `HEAD`: without the OCI ones a registry
/// answers 404 for OCI-typed images.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    hosts: HashMap<String, HostSettings>,
    /// `n=` on tag lists; `None` leaves the page size to the registry.
    pub page_size: Option<u32>,
    /// Refuse to read more pages than this for one image.
    pub max_pages: usize,
    pub retry: RetryPolicy,
    /// Per request, connection included.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
struct HostSettings {
    mirror: Option<String>,
    insecure: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            hosts: HashMap::new(),
            page_size: Some(1000),
            max_pages: 100,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RegistrySettings {
    /// From `registries:` in `relbot.yaml`.
    pub fn from_config(registries: &[RegistryConfig]) -> Self {
        let mut settings = Self::default();
        for r in registries {
            settings.set_host(&r.host, r.mirror.as_deref(), r.insecure);
        }
        settings
    }

    /// Reach `host` through `mirror` (a `host[:port]`, e.g. the pull-through
    /// registry a K3s cluster pulls from); `insecure` allows plain HTTP.
    pub fn set_host(&mut self, host: &str, mirror: Option<&str>, insecure: bool) {
        let mirror = mirror.map(|m| {
            m.trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        });
        self.hosts.insert(
            image::normalise_registry(host),
            HostSettings { mirror, insecure },
        );
    }

    /// `http(s)://host[:port]` that serves `image`'s `/v2/` API.
    pub fn base_url(&self, image: &ImageRef) -> String {
        let settings = self.hosts.get(&image.registry).cloned().unwrap_or_default();
        let host = settings
            .mirror
            .clone()
            .unwrap_or_else(|| image.api_host().to_string());
        let mirror_insecure = self
            .hosts
            .get(&image::normalise_registry(&host))
            .is_some_and(|h| h.insecure);
        let plain = image::is_loopback(&host)
            || mirror_insecure
            || (settings.insecure && settings.mirror.is_none());
        format!("{}://{host}", if plain { "http" } else { "https" })
    }
}

/// Counters the service exports as metrics. Monotonic.
#[derive(Debug, Default)]
pub struct RegistryStats {
    /// Requests sent to registry APIs (token requests not included).
    pub requests: AtomicU64,
    pub token_requests: AtomicU64,
    /// Tag-list pages read (fresh or 304).
    pub pages: AtomicU64,
    /// Pages the registry answered 304 Not Modified.
    pub not_modified: AtomicU64,
    /// Times we waited because a registry said 429.
    pub rate_limit_waits: AtomicU64,
    /// Retries after 5xx or 429.
    pub retries: AtomicU64,
}

/// A plain copy of [`RegistryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub token_requests: u64,
    pub pages: u64,
    pub not_modified: u64,
    pub rate_limit_waits: u64,
    pub retries: u64,
}

impl StatsSnapshot {
    /// What happened between `earlier` and this snapshot of the same client.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            token_requests: self.token_requests.saturating_sub(earlier.token_requests),
            pages: self.pages.saturating_sub(earlier.pages),
            not_modified: self.not_modified.saturating_sub(earlier.not_modified),
            rate_limit_waits: self
                .rate_limit_waits
                .saturating_sub(earlier.rate_limit_waits),
            retries: self.retries.saturating_sub(earlier.retries),
        }
    }
}

impl RegistryStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: get(&self.requests),
            token_requests: get(&self.token_requests),
            pages: get(&self.pages),
            not_modified: get(&self.not_modified),
            rate_limit_waits: get(&self.rate_limit_waits),
            retries: get(&self.retries),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(
        "cannot reach registry at {url}: {}; check the host name, port and network",
        crate::error_chain::deepest_cause(.source)
    )]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{image}: registry {host} refused access ({reason}); set RELBOT_REGISTRY_{env_key}_USERNAME and \
         RELBOT_REGISTRY_{env_key}_PASSWORD, or add {host} to the docker config.json"
    )]
    Unauthorized {
        image: String,
        host: String,
        env_key: String,
        reason: String,
    },
    #[error("{image}: token service {realm} answered {reason}; check the credentials for {host}")]
    Token {
        image: String,
        host: String,
        realm: String,
        reason: String,
    },
    #[error(
        "{image}: {what} not found at {url}; check the image name and tag (private repositories also answer 404 \
         without credentials)"
    )]
    NotFound {
        image: String,
        what: String,
        url: String,
    },
    #[error(
        "registry {host} is rate-limiting us{}; not retrying now so we do not make it worse",
        retry_after.map(|d| format!(" (it asks to wait {}s)", d.as_secs())).unwrap_or_default()
    )]
    RateLimited {
        host: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} answered {status} after {attempts} attempt(s): {body}")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    #[error(
        "{url}: the next page link points to another origin ({next}); not followed so credentials stay with \
         this registry"
    )]
    CrossOriginLink { url: String, next: String },
    #[error("{image}: more than {max_pages} pages of tags; raise max_pages or the page size")]
    TooManyPages { image: String, max_pages: usize },
    #[error("{url}: the next page link loops back to a page already read")]
    PaginationLoop { url: String },
    #[error("{url}: unexpected answer: {reason}")]
    InvalidResponse { url: String, reason: String },
}

/// How a registry origin wants to be authenticated, learned from its 401.
#[derive(Debug, Clone)]
enum HostAuth {
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug, Clone)]
struct CachedPage {
    etag: String,
    tags: Vec<String>,
    next: Option<Url>,
}

#[derive(Debug, Default)]
struct State {
    host_auth: HashMap<String, HostAuth>,
    tokens: TokenCache,
    pages: HashMap<String, CachedPage>,
    /// Origins that told us to wait (429 + Retry-After) until then.
    blocked_until: HashMap<String, Instant>,
    /// Last `ratelimit-remaining` per origin.
    remaining: HashMap<String, u64>,
    /// (origin, our scope) → the scope the registry's challenge named instead.
    scopes: HashMap<(String, String), String>,
}

/// Talks to any number of registries; share one per process (`Arc`): the
/// token, ETag and back-off state is what keeps request counts low.
pub struct RegistryClient {
    http: reqwest::Client,
    settings: RegistrySettings,
    credentials: RegistryCredentials,
    state: Mutex<State>,
    stats: RegistryStats,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("settings", &self.settings)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

struct Request<'a> {
    image: &'a ImageRef,
    method: Method,
    url: Url,
    accept: Option<String>,
    if_none_match: Option<String>,
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
            .map_err(|source| RegistryError::Transport {
                url: "(client setup)".into(),
                source,
            })?;
        Ok(Self {
            http,
            settings,
            credentials,
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

    /// Every tag of `image`, in the registry's order, duplicates removed.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        self.list_tags_observed(image, &mut |_, _| {}).await
    }

    /// [`Self::list_tags`], calling `on_page(pages, tags)` after each page
    /// read, so a long listing can show how far it got.
    pub async fn list_tags_observed(
        &self,
        image: &ImageRef,
        on_page: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<Vec<String>, RegistryError> {
        let base = self.settings.base_url(image);
        let mut url = parse_url(&format!("{base}/v2/{}/tags/list", image.repository))?;
        if let Some(n) = self.settings.page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut tags = Vec::new();
        let mut seen_tags = HashSet::new();
        let mut seen_pages = HashSet::new();
        let mut next = Some(url);
        while let Some(page_url) = next.take() {
            if seen_pages.len() >= self.settings.max_pages {
                return Err(RegistryError::TooManyPages {
                    image: image.name(),
                    max_pages: self.settings.max_pages,
                });
            }
            if !seen_pages.insert(page_url.to_string()) {
                return Err(RegistryError::PaginationLoop {
                    url: page_url.to_string(),
                });
            }
            let page = self.tags_page(image, &page_url).await?;
            bump(&self.stats.pages);
            for tag in page.tags {
                if seen_tags.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            on_page(seen_pages.len(), tags.len());
            if let Some(link) = page.next {
                if !pagination::same_origin(&page_url, &link) {
                    return Err(RegistryError::CrossOriginLink {
                        url: page_url.to_string(),
                        next: link.to_string(),
                    });
                }
                next = Some(link);
            }
        }
        Ok(tags)
    }

    async fn tags_page(&self, image: &ImageRef, url: &Url) -> Result<CachedPage, RegistryError> {
        let cached = self.lock().pages.get(url.as_str()).cloned();
        let request = Request {
            image,
            method: Method::GET,
            url: url.clone(),
            accept: Some("application/json".into()),
            if_none_match: cached.as_ref().map(|c| c.etag.clone()),
        };
        let response = self.send(&request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            if let Some(mut page) = cached {
                bump(&self.stats.not_modified);
                // The ETag covers the body; the next-page link is a header and
                // can change on its own (a tag added after this page).
                if let Some(link) = response.headers().get(LINK).and_then(|v| v.to_str().ok()) {
                    page.next = pagination::next_link(link, url)
                        .transpose()
                        .map_err(|reason| invalid(url, &reason))?;
                }
                return Ok(page);
            }
            return Err(invalid(url, "304 Not Modified without having sent an ETag"));
        }
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                image: image.name(),
                what: "repository".into(),
                url: url.to_string(),
            });
        }
        if !status.is_success() {
            return Err(status_error(url, response, 1).await);
        }
        let next = match response.headers().get(LINK).and_then(|v| v.to_str().ok()) {
            Some(link) => pagination::next_link(link, url)
                .transpose()
                .map_err(|reason| invalid(url, &reason))?,
            None => None,
        };
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Transport {
                url: url.to_string(),
                source,
            })?;
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let list: TagList = serde_json::from_slice(&body)
            .map_err(|e| invalid(url, &format!("tag list is not JSON: {e}")))?;
        let page = CachedPage {
            etag: etag.clone().unwrap_or_default(),
            tags: list.tags.unwrap_or_default(),
            next,
        };
        let mut state = self.lock();
        if etag.is_some() {
            state.pages.insert(url.to_string(), page.clone());
        } else {
            state.pages.remove(url.as_str());
        }
        Ok(page)
    }

    /// The digest (`sha256:…`) of `image:tag`'s manifest or index, by `HEAD`.
    pub async fn manifest_digest(
        &self,
        image: &ImageRef,
        tag: &str,
    ) -> Result<String, RegistryError> {
        let base = self.settings.base_url(image);
        let url = parse_url(&format!("{base}/v2/{}/manifests/{tag}", image.repository))?;
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let head = Request {
            image,
            method: Method::HEAD,
            url: url.clone(),
            accept: Some(accept.clone()),
            if_none_match: None,
        };
        let response = self.send(&head).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    image: image.name(),
                    what: format!("tag {tag:?}"),
                    url: url.to_string(),
                });
            }
            s if !s.is_success() => return Err(status_error(&url, response, 1).await),
            _ => {}
        }
        if let Some(digest) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            return Ok(digest.to_string());
        }
        // A registry without the header: the digest is the manifest bytes' sha256
        // (this GET counts as a pull on registries that meter them).
        let get = Request {
            image,
            method: Method::GET,
            url: url.clone(),
            accept: Some(accept),
            if_none_match: None,
        };
        let response = self.send(&get).await?;
        if !response.status().is_success() {
            return Err(status_error(&url, response, 1).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Transport {
                url: url.to_string(),
                source,
            })?;
        Ok(format!("sha256:{}", hex(&Sha256::digest(&body))))
    }

    /// Sends with auth, waiting out and retrying 429/5xx within the policy.
    /// Returns any other answer (the caller judges 404, 304…).
    async fn send(&self, request: &Request<'_>) -> Result<reqwest::Response, RegistryError> {
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
        let mut challenged = false;
        loop {
            self.wait_for_origin(&origin, &host).await?;
            let authorization = self.authorization(request, &origin, &host, &scope).await?;
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
                Err(source) => {
                    return Err(RegistryError::Transport {
                        url: request.url.to_string(),
                        source,
                    });
                }
            };
            crate::clock::observe(crate::clock::Peer::Registry, response.headers());
            self.note_ratelimit(&origin, response.headers());
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                // A token the registry no longer takes (revoked, or its clock
                // disagrees with ours) must not be offered again.
                if let Some(token) = &sent_bearer {
                    self.lock().tokens.forget(token);
                }
                self.learn_challenge(request, &origin, &host, &scope, response.headers())?;
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
                return Err(self.unauthorized(request, &host, &reason));
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
                    return Err(RegistryError::RateLimited { host, retry_after });
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

    /// The `Authorization` value for a request, if this origin needs one:
    /// basic credentials, or a cached (else freshly fetched) bearer token.
    async fn authorization(
        &self,
        request: &Request<'_>,
        origin: &str,
        host: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let (host_auth, scope) = {
            let state = self.lock();
            let wanted = state
                .scopes
                .get(&(origin.to_string(), scope.to_string()))
                .cloned();
            (
                state.host_auth.get(origin).cloned(),
                wanted.unwrap_or_else(|| scope.to_string()),
            )
        };
        let scope = scope.as_str();
        match host_auth {
            None => Ok(None),
            Some(HostAuth::Basic) => match self.credentials.get(host) {
                Some(c) => Ok(Some(basic_value(c))),
                None => Err(self.unauthorized(
                    request,
                    host,
                    "the registry asks for a username and password",
                )),
            },
            Some(HostAuth::Bearer { realm, service }) => {
                let cached = self
                    .lock()
                    .tokens
                    .get(&realm, &service, scope, Instant::now())
                    .map(|t| t.value.clone());
                let token = match cached {
                    Some(token) => token,
                    None => {
                        self.fetch_token(request, host, &realm, &service, scope)
                            .await?
                    }
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn learn_challenge(
        &self,
        request: &Request<'_>,
        origin: &str,
        host: &str,
        scope: &str,
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
                let mut state = self.lock();
                state.host_auth.insert(
                    origin.to_string(),
                    HostAuth::Bearer {
                        realm,
                        service: service.unwrap_or_default(),
                    },
                );
                // The registry names the scope it wants; ask for exactly that from now on.
                if let Some(wanted) = challenge_scope.filter(|s| s != scope) {
                    state
                        .scopes
                        .insert((origin.to_string(), scope.to_string()), wanted);
                }
                Ok(())
            }
            Some(Challenge::Basic) => {
                if self.credentials.get(host).is_none() {
                    return Err(self.unauthorized(
                        request,
                        host,
                        "the registry asks for a username and password",
                    ));
                }
                self.lock()
                    .host_auth
                    .insert(origin.to_string(), HostAuth::Basic);
                Ok(())
            }
            None => Err(self.unauthorized(
                request,
                host,
                "401 without a usable WWW-Authenticate challenge",
            )),
        }
    }

    async fn fetch_token(
        &self,
        request: &Request<'_>,
        host: &str,
        realm: &str,
        service: &str,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let token_error = |reason: String| RegistryError::Token {
            image: request.image.name(),
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
        let response = builder
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                url: realm.to_string(),
                source,
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(
                request,
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
        self.lock().tokens.insert(
            realm,
            service,
            scope,
            token.clone(),
            lifetime,
            Instant::now(),
        );
        Ok(token)
    }

    fn unauthorized(&self, request: &Request<'_>, host: &str, reason: &str) -> RegistryError {
        RegistryError::Unauthorized {
            image: request.image.name(),
            host: image::normalise_registry(host),
            env_key: auth::env_key(host),
            reason: reason.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds caches only; a panic elsewhere cannot leave it invalid.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn basic_value(c: &Credential) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn parse_url(text: &str) -> Result<Url, RegistryError> {
    Url::parse(text).map_err(|e| RegistryError::InvalidResponse {
        url: text.to_string(),
        reason: e.to_string(),
    })
}

fn invalid(url: &Url, reason: &str) -> RegistryError {
    RegistryError::InvalidResponse {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

async fn status_error(url: &Url, response: reqwest::Response, attempts: u32) -> RegistryError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    RegistryError::Status {
        url: url.to_string(),
        status,
        attempts,
        body: body.trim().to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn schemes_follow_docker_rules() {
        let mut settings = RegistrySettings::default();
        assert_eq!(
            settings.base_url(&image("nginx")),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            settings.base_url(&image("127.0.0.1:5000/app")),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            settings.base_url(&image("localhost:5000/app")),
            "http://localhost:5000"
        );
        assert_eq!(
            settings.base_url(&image("registry.local:5000/app")),
            "https://registry.local:5000"
        );
        settings.set_host("registry.local:5000", None, true);
        assert_eq!(
            settings.base_url(&image("registry.local:5000/app")),
            "http://registry.local:5000"
        );
    }

    #[test]
    fn mirrors_replace_the_host_and_bring_their_own_scheme() {
        let settings = RegistrySettings::from_config(&[
            RegistryConfig {
                host: "docker.io".into(),
                mirror: Some("mirror.k3s.local:5000".into()),
                insecure: false,
            },
            RegistryConfig {
                host: "mirror.k3s.local:5000".into(),
                mirror: None,
                insecure: true,
            },
            RegistryConfig {
                host: "ghcr.io".into(),
                mirror: Some("http://127.0.0.1:6000/".into()),
                insecure: false,
            },
        ]);
        assert_eq!(
            settings.base_url(&image("nginx")),
            "http://mirror.k3s.local:5000"
        );
        assert_eq!(
            settings.base_url(&image("ghcr.io/a/b")),
            "http://127.0.0.1:6000"
        );
        assert_eq!(settings.base_url(&image("quay.io/a/b")), "https://quay.io");
    }

    #[test]
    fn errors_tell_what_to_do_without_secrets() {
        let e = RegistryError::Unauthorized {
            image: "ghcr.io/acme/api".into(),
            host: "ghcr.io".into(),
            env_key: "GHCR_IO".into(),
            reason: "HTTP 401".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("RELBOT_REGISTRY_GHCR_IO_USERNAME") && text.contains("ghcr.io/acme/api"),
            "{text}"
        );
        let e = RegistryError::RateLimited {
            host: "docker.io".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert!(e.to_string().contains("3600s"), "{e}");
    }

    #[test]
    fn hex_digest_matches_sha256sum() {
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
