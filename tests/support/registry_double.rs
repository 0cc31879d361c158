//! An HTTP test double for registry behaviours the real `docker-registry`
//! lacks or cannot be made to show on demand: tag-list pagination (`n=`,
//! `last=`, `Link`), ETags, the bearer-token challenge with a token endpoint,
//! scripted 429/5xx answers, and `ratelimit-remaining` headers. It speaks the
//! distribution spec's shapes and logs every request it receives.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use sha2::{Digest, Sha256};

/// Bearer auth as Docker Hub and GHCR do it.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    pub service: String,
    pub token_ttl: Duration,
    /// When set, the token endpoint demands these as basic auth.
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct DoubleConfig {
    /// repository → tags.
    pub repositories: HashMap<String, Vec<String>>,
    pub bearer: Option<BearerAuth>,
    /// Largest page served whatever `n` asks; `None`: the whole list.
    pub max_page: Option<usize>,
    pub etags: bool,
    /// Next-page links point to this origin (`http://host:port`) instead.
    pub foreign_link_origin: Option<String>,
    pub ratelimit_remaining: Option<u64>,
}

/// An answer to give instead of the real one, for the next `/v2/<name>/…` request.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct DoubleState {
    config: DoubleConfig,
    script: VecDeque<Scripted>,
    log: Vec<Logged>,
    tokens: HashMap<String, Instant>,
    issued: u64,
}

pub struct RegistryDouble {
    pub addr: SocketAddr,
    state: Arc<Mutex<DoubleState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RegistryDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RegistryDouble {
    pub async fn start(config: DoubleConfig) -> Self {
        relbot::tls::init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(DoubleState {
            config,
            ..Default::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn image(&self, repository: &str) -> relbot::release::registry::ImageRef {
        relbot::release::registry::ImageRef::parse(&format!("{}/{repository}", self.host()))
            .unwrap()
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn set_tags(&self, repository: &str, tags: Vec<String>) {
        self.state
            .lock()
            .unwrap()
            .config
            .repositories
            .insert(repository.to_string(), tags);
    }

    /// Forgets every token issued so far, as a registry does on revocation.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests to the token endpoint.
    pub fn token_requests(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.target.starts_with("/token"))
            .collect()
    }

    /// Requests to the registry API.
    pub fn api_requests(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.target.starts_with("/v2/"))
            .collect()
    }
}

fn reply(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header("docker-distribution-api-version", "registry/2.0")
}

fn json_error(status: StatusCode, code: &str) -> Response<Body> {
    reply(status)
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#
        )))
        .unwrap()
}

async fn handle(
    State(state): State<Arc<Mutex<DoubleState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let target = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let host = header("host").unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.log.push(Logged {
        method: method.to_string(),
        target: target.clone(),
        authorization: header("authorization"),
        if_none_match: header("if-none-match"),
        at: Instant::now(),
    });
    let query: HashMap<String, String> = uri.query().map(url_pairs).unwrap_or_default();

    if uri.path() == "/token" {
        return token(&mut s, &query, header("authorization"));
    }
    let Some(rest) = uri.path().strip_prefix("/v2/") else {
        return json_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if let Some(scripted) = s.script.pop_front() {
        let mut r = reply(StatusCode::from_u16(scripted.status).unwrap());
        if let Some(after) = scripted.retry_after {
            r = r.header("retry-after", after);
        }
        return r.body(Body::from("scripted")).unwrap();
    }
    let (repository, action) = match (
        rest.rsplit_once("/tags/list"),
        rest.split_once("/manifests/"),
    ) {
        (Some((repo, "")), _) => (repo.to_string(), Action::Tags),
        (_, Some((repo, reference))) => (repo.to_string(), Action::Manifest(reference.to_string())),
        _ if rest.is_empty() => (String::new(), Action::Base),
        _ => return json_error(StatusCode::NOT_FOUND, "NOT_FOUND"),
    };
    if let Some(bearer) = s.config.bearer.clone() {
        let valid = header("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
            .and_then(|t| s.tokens.get(&t).copied())
            .is_some_and(|expiry| expiry > Instant::now());
        if !valid {
            let scope = if repository.is_empty() {
                String::new()
            } else {
                format!(r#",scope="repository:{repository}:pull""#)
            };
            return reply(StatusCode::UNAUTHORIZED)
                .header(
                    "www-authenticate",
                    format!(
                        r#"Bearer realm="http://{host}/token",service="{}"{scope}"#,
                        bearer.service
                    ),
                )
                .header("content-type", "application/json")
                .body(Body::from(r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#))
                .unwrap();
        }
    }
    let ratelimit = s.config.ratelimit_remaining;
    let mut response = match action {
        Action::Base => reply(StatusCode::OK).body(Body::from("{}")).unwrap(),
        Action::Tags => tags_page(&s.config, &repository, &query, header("if-none-match")),
        Action::Manifest(reference) => {
            if !s
                .config
                .repositories
                .get(&repository)
                .is_some_and(|t| t.contains(&reference))
            {
                json_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
            } else {
                let body = format!(r#"{{"schemaVersion":2,"tag":"{reference}"}}"#);
                let digest = format!("sha256:{}", hex(&Sha256::digest(body.as_bytes())));
                let r = reply(StatusCode::OK)
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .header("docker-content-digest", digest);
                if method == Method::HEAD {
                    r.body(Body::empty()).unwrap()
                } else {
                    r.body(Body::from(body)).unwrap()
                }
            }
        }
    };
    if let Some(remaining) = ratelimit {
        response.headers_mut().insert(
            "ratelimit-remaining",
            format!("{remaining};w=21600").parse().unwrap(),
        );
    }
    response
}

enum Action {
    Base,
    Tags,
    Manifest(String),
}

fn token(
    s: &mut DoubleState,
    query: &HashMap<String, String>,
    authorization: Option<String>,
) -> Response<Body> {
    let Some(bearer) = s.config.bearer.clone() else {
        return json_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if let Some((user, pass)) = &bearer.credentials {
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        if authorization.as_deref() != Some(expected.as_str()) {
            return json_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        }
    }
    if query.get("service") != Some(&bearer.service)
        || !query
            .get("scope")
            .is_some_and(|s| s.starts_with("repository:"))
    {
        return json_error(StatusCode::BAD_REQUEST, "BAD_SCOPE");
    }
    s.issued += 1;
    let token = format!("tok-{}", s.issued);
    s.tokens
        .insert(token.clone(), Instant::now() + bearer.token_ttl);
    reply(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"token":"{token}","expires_in":{}}}"#,
            bearer.token_ttl.as_secs()
        )))
        .unwrap()
}

fn tags_page(
    config: &DoubleConfig,
    repository: &str,
    query: &HashMap<String, String>,
    if_none_match: Option<String>,
) -> Response<Body> {
    let Some(all) = config.repositories.get(repository) else {
        return json_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    };
    let mut sorted = all.clone();
    sorted.sort();
    let start = match query.get("last") {
        Some(last) => sorted.iter().position(|t| t > last).unwrap_or(sorted.len()),
        None => 0,
    };
    let asked = query
        .get("n")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let size = asked.min(config.max_page.unwrap_or(usize::MAX));
    let page: Vec<&String> = sorted[start..].iter().take(size).collect();
    let body = serde_json::json!({ "name": repository, "tags": page }).to_string();
    let etag = format!("\"{}\"", hex(&Sha256::digest(body.as_bytes())));
    let mut r = reply(StatusCode::OK).header("content-type", "application/json");
    if start + page.len() < sorted.len() {
        let origin = config.foreign_link_origin.clone().unwrap_or_default();
        let last = page.last().map(|t| t.as_str()).unwrap_or_default();
        r = r.header(
            "link",
            format!(r#"<{origin}/v2/{repository}/tags/list?n={size}&last={last}>; rel="next""#),
        );
    }
    if config.etags {
        if if_none_match.as_deref() == Some(etag.as_str()) {
            return r
                .status(StatusCode::NOT_MODIFIED)
                .header("etag", etag)
                .body(Body::empty())
                .unwrap();
        }
        r = r.header("etag", etag);
    }
    r.body(Body::from(body)).unwrap()
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
