//! Cluster handles over dynamic objects.
//!
//! [`ReadOnlyCluster`] can get, list, discover and run server-side apply with
//! `dryRun=All`; it has no method that writes. [`Cluster`] adds apply and
//! delete. `relbot sync --dry-run` and `relbot diff` only ever hold a
//! `ReadOnlyCluster`, so "a dry-run never writes" is a property of the types,
//! not of a flag checked at every call.
//!
//! Requests go out as raw `kube::core::Request`s parsed straight into
//! `serde_json::Value`: objects are handled as JSON throughout (diffs,
//! hashes, health), and this skips a round trip through `DynamicObject`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, ValidationDirective};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::discovery::{KindIndex, ResolvedKind};
use super::fields::FIELD_MANAGER;

mod list;
pub use list::ListFrom;

/// How the user pointed at a cluster (`--kubeconfig`, `--context`).
#[derive(Debug, Clone, Default)]
pub struct ClusterTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("in-cluster configuration: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error(
        "no cluster configured: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run inside a cluster"
    )]
    NotConfigured,
    #[error(
        "cannot build a client for {server}: {}",
        super::kube_error::describe(.source)
    )]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    /// `why` completes "the cluster at …": it did not answer in time, or
    /// the connection failed (refused, unknown host, TLS).
    #[error("the cluster at {server} {why}")]
    Unreachable { server: String, why: String },
    #[error("the cluster at {server} refused a request: {message}")]
    Unavailable { server: String, message: String },
    #[error("{action} {what}: {failure}")]
    Api {
        action: &'static str,
        what: String,
        failure: ApiFailure,
    },
}

/// What a delete does to the objects the deleted one owns (its
/// ReplicaSets, its Pods): deleted in the background, or kept running
/// without an owner (`kubectl delete --cascade=orphan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependents {
    Delete,
    Keep,
}

/// What the API server said when it refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({})", status_words(*.code, .reason))]
pub struct ApiFailure {
    /// HTTP status; 0 when the request never got an answer.
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl ApiFailure {
    pub fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => {
                let mut message = super::kube_error::server_words(&status.message);
                // A token refused for its validity time: name the clock.
                if status.code == 401
                    && let Some(hint) = crate::clock::refusal_hint(
                        crate::clock::Peer::ApiServer,
                        status.code,
                        &status.message,
                    )
                {
                    message = format!("{message} ({hint})");
                }
                ApiFailure {
                    code: status.code,
                    reason: status.reason.clone(),
                    message,
                }
            }
            other => ApiFailure {
                code: 0,
                reason: "Transport".into(),
                message: super::kube_error::describe(&other),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// The server rejected a change to a field that cannot change in place
    /// (a Service's clusterIP, a Deployment's selector, a Job's template, a
    /// StatefulSet's volumeClaimTemplates, a RoleBinding's roleRef, a
    /// StorageClass's parameters). The server words these in several ways;
    /// a CEL rule or a webhook usually says "immutable".
    pub fn is_immutable(&self) -> bool {
        const IN_PLACE_REFUSALS: [&str; 4] = [
            "immutable",
            "may not change once set",
            "cannot change roleRef",
            "pod updates may not change fields other than",
        ];
        let says = |words: &str| self.message.contains(words);
        self.code == 422
            && (IN_PLACE_REFUSALS.iter().any(|words| says(words))
                // "updates to statefulset spec for fields other than … are
                // forbidden", "updates to parameters are forbidden."
                || (says("updates to ") && says(" are forbidden")))
    }

    /// A request that may succeed if simply sent again. A server-side apply
    /// of a field the schema does not know is answered 500 by the API server
    /// (kubernetes#122480) and fails the same way every time.
    pub fn is_transient(&self) -> bool {
        matches!(self.code, 0 | 429 | 500 | 502 | 503 | 504) && !self.is_schema_rejection()
    }

    /// The server's "failed to create typed patch object … field not
    /// declared in schema" (an unknown field or a wrong type under apply),
    /// in the words [`super::kube_error::server_words`] gave it.
    pub fn is_schema_rejection(&self) -> bool {
        self.code == 500 && self.message.starts_with(super::kube_error::SCHEMA_REFUSAL)
    }
}

/// `500`, or `422 Invalid` when the server gave a reason.
fn status_words(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        code.to_string()
    } else {
        format!("{code} {reason}")
    }
}

/// Requests sent through a handle, by what they could do to the cluster.
#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    dry_runs: AtomicU64,
    writes: AtomicU64,
}

/// A snapshot of [`Counters`]; part of every result, for benchmarks and for
/// "a dry-run writes nothing" checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub reads: u64,
    pub dry_runs: u64,
    pub writes: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.reads + self.dry_runs + self.writes
    }

    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            reads: self.reads - earlier.reads,
            dry_runs: self.dry_runs - earlier.dry_runs,
            writes: self.writes - earlier.writes,
        }
    }
}

/// Where a kubeconfig came from, for messages.
#[derive(Debug, Clone)]
pub struct Located {
    pub config: kube::Config,
    /// `kubeconfig /home/me/.kube/config (context k3s)` or `in-cluster service account`.
    pub source: String,
}

/// Finds cluster credentials: `--kubeconfig`, then `KUBECONFIG`, then
/// `~/.kube/config`, then the in-cluster service account. `Ok(None)` means
/// nothing is configured at all (an offline dry-run is still possible).
pub async fn locate(target: &ClusterTarget) -> Result<Option<Located>, ClusterError> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let found = if let Some(path) = &target.kubeconfig {
        Some(read_kubeconfig(path.clone(), &options).await?)
    } else if let Some(paths) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let shown = paths.to_string_lossy().to_string();
        let merged = Kubeconfig::from_env()
            .map_err(|source| ClusterError::Kubeconfig {
                path: shown.clone(),
                source,
            })?
            .unwrap_or_default();
        let config = kube::Config::from_custom_kubeconfig(merged, &options)
            .await
            .map_err(|source| ClusterError::Kubeconfig {
                path: shown.clone(),
                source,
            })?;
        Some((config, shown))
    } else if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && home.join(".kube/config").is_file()
    {
        Some(read_kubeconfig(home.join(".kube/config"), &options).await?)
    } else {
        None
    };
    if let Some((config, path)) = found {
        let context = target
            .context
            .as_deref()
            .map(|c| format!(" (context {c})"))
            .unwrap_or_default();
        return Ok(Some(Located {
            config,
            source: format!("kubeconfig {path}{context}"),
        }));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        let config = kube::Config::incluster().map_err(ClusterError::InCluster)?;
        return Ok(Some(Located {
            config,
            source: "in-cluster service account".into(),
        }));
    }
    Ok(None)
}

async fn read_kubeconfig(
    path: PathBuf,
    options: &KubeConfigOptions,
) -> Result<(kube::Config, String), ClusterError> {
    let shown = path.display().to_string();
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|source| ClusterError::Kubeconfig {
        path: shown.clone(),
        source,
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, options)
        .await
        .map_err(|source| ClusterError::Kubeconfig {
            path: shown.clone(),
            source,
        })?;
    Ok((config, shown))
}

/// A cluster that can be read and asked for dry-runs, never written.
#[derive(Clone)]
pub struct ReadOnlyCluster {
    client: kube::Client,
    server: String,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ReadOnlyCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyCluster")
            .field("server", &self.server)
            .finish()
    }
}

/// A cluster that relbot may change. Derefs to [`ReadOnlyCluster`] for reads.
#[derive(Clone, Debug)]
pub struct Cluster {
    read: ReadOnlyCluster,
}

impl std::ops::Deref for Cluster {
    type Target = ReadOnlyCluster;
    fn deref(&self) -> &ReadOnlyCluster {
        &self.read
    }
}

/// Items a list request asks for at once: large enough that an application
/// of 1,000 objects lists each kind in one request (a page more is a round
/// trip more on every no-op re-check), small enough that a very large one is
/// never parsed whole.
pub const LIST_PAGE: u32 = 1_000;

pub(super) fn build_client(config: kube::Config) -> Result<(kube::Client, String), ClusterError> {
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|source| ClusterError::Client {
            server: server.clone(),
            source,
        })?
        // Every answer's Date against the local clock (see crate::clock).
        .with_layer(&tower::util::MapResponseLayer::new(
            |response: http::Response<_>| {
                crate::clock::observe(crate::clock::Peer::ApiServer, response.headers());
                response
            },
        ))
        .build();
    Ok((client, server))
}

impl ReadOnlyCluster {
    pub fn new(config: kube::Config) -> Result<Self, ClusterError> {
        crate::tls::init();
        let (client, server) = build_client(config)?;
        Ok(Self {
            client,
            server,
            counters: Arc::default(),
        })
    }

    /// From an existing client (tests, the server's shared client).
    pub fn from_client(client: kube::Client, server: impl Into<String>) -> Self {
        Self {
            client,
            server: server.into(),
            counters: Arc::default(),
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            reads: self.counters.reads.load(Ordering::Relaxed),
            dry_runs: self.counters.dry_runs.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    fn count_read(&self, n: u64) {
        self.counters.reads.fetch_add(n, Ordering::Relaxed);
    }

    /// Checks that the server answers within `timeout` (one cheap request).
    pub async fn ping(&self, timeout: Duration) -> Result<(), ClusterError> {
        self.count_read(1);
        match tokio::time::timeout(timeout, self.client.apiserver_version()).await {
            Err(_) => Err(ClusterError::Unreachable {
                server: self.server.clone(),
                why: format!("did not answer within {}s", timeout.as_secs()),
            }),
            Ok(Err(e)) => {
                let cause = crate::error_chain::deepest_cause(&e);
                let failure = ApiFailure::from_kube(e);
                if failure.code == 0 {
                    Err(ClusterError::Unreachable {
                        server: self.server.clone(),
                        why: format!("cannot be reached: {cause}"),
                    })
                } else {
                    Err(ClusterError::Unavailable {
                        server: self.server.clone(),
                        message: failure.to_string(),
                    })
                }
            }
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Every served kind: aggregated discovery (2 requests), or one request
    /// per group version on servers that lack it.
    pub async fn discover(&self) -> Result<KindIndex, ClusterError> {
        let fail = |e: kube::Error| ClusterError::Api {
            action: "discover",
            what: "the API server's kinds".into(),
            failure: ApiFailure::from_kube(e),
        };
        self.count_read(2);
        match kube::Discovery::new(self.client.clone())
            .run_aggregated()
            .await
        {
            Ok(discovery) => Ok(KindIndex::from_discovery(&discovery)),
            Err(_) => {
                let discovery = kube::Discovery::new(self.client.clone())
                    .run()
                    .await
                    .map_err(fail)?;
                let versions: u64 = discovery
                    .groups()
                    .map(|g| g.versions().count() as u64)
                    .sum();
                self.count_read(versions + 1);
                Ok(KindIndex::from_discovery(&discovery))
            }
        }
    }

    /// One object, or `None` when it does not exist.
    pub async fn get(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiFailure> {
        self.count_read(1);
        let request = Request::new(kind.collection_path(namespace)).get(name, &Default::default());
        absent_is_none(self.send(request).await)
    }

    /// Server-side apply with `dryRun=All` and strict field validation:
    /// the object as it would be after the apply, with nothing stored.
    pub async fn dry_run_apply(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.server_side_apply(kind, namespace, name, body, true)
            .await
    }

    /// A create with `dryRun=All` (hooks are created anew each run, so
    /// that is what their dry-run checks): nothing is stored.
    pub async fn dry_run_create(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.create_as_relbot(kind, namespace, body, true).await
    }

    /// Server-side apply as `relbot`, forced, strictly validated; a dry run
    /// (`dryRun=All`) stores nothing.
    async fn server_side_apply(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiFailure> {
        self.count_change(dry_run);
        let params = PatchParams {
            dry_run,
            force: true,
            field_manager: Some(FIELD_MANAGER.into()),
            field_validation: Some(ValidationDirective::Strict),
        };
        self.patch(kind, namespace, name, &Patch::Apply(body), &params)
            .await
    }

    /// A create as `relbot`, strictly validated like its applies; a dry run
    /// stores nothing.
    async fn create_as_relbot(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiFailure> {
        self.count_change(dry_run);
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let data = serde_json::to_vec(body).map_err(|e| bad_request(e.to_string()))?;
        let request = Request::new(kind.collection_path(namespace))
            .create(&params, data)
            .map(strictly_validated);
        self.send(request).await
    }

    /// Counts a request that changes the cluster, or would (a dry run).
    fn count_change(&self, dry_run: bool) {
        let counter = if dry_run {
            &self.counters.dry_runs
        } else {
            &self.counters.writes
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn patch(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch<&Value>,
        params: &PatchParams,
    ) -> Result<Value, ApiFailure> {
        self.send(Request::new(kind.collection_path(namespace)).patch(name, params, patch))
            .await
    }

    /// Sends a request built for one object; a request that could not be
    /// built is the caller's bad request, not the server's answer.
    async fn send(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Value, ApiFailure> {
        let request = request.map_err(request_error)?;
        self.client
            .request::<Value>(request)
            .await
            .map_err(ApiFailure::from_kube)
    }
}

/// `fieldValidation=Strict` on a request whose parameters cannot say it
/// (kube's `PostParams`): a field the server does not know is an error, not
/// silently dropped.
fn strictly_validated(mut request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let uri = request.uri().to_string();
    let separator = if uri.contains('?') { '&' } else { '?' };
    if let Ok(strict) = format!("{uri}{separator}fieldValidation=Strict").parse() {
        *request.uri_mut() = strict;
    }
    request
}

fn request_error(e: kube::core::request::Error) -> ApiFailure {
    bad_request(e.to_string())
}

fn bad_request(message: String) -> ApiFailure {
    ApiFailure {
        code: 0,
        reason: "BadRequest".into(),
        message,
    }
}

/// An object that is not there reads as `None` (a get) or as done (a delete).
fn absent_is_none(result: Result<Value, ApiFailure>) -> Result<Option<Value>, ApiFailure> {
    match result {
        Ok(object) => Ok(Some(object)),
        Err(failure) if failure.is_not_found() => Ok(None),
        Err(failure) => Err(failure),
    }
}

impl Cluster {
    pub fn new(config: kube::Config) -> Result<Self, ClusterError> {
        Ok(Self {
            read: ReadOnlyCluster::new(config)?,
        })
    }

    pub fn from_client(client: kube::Client, server: impl Into<String>) -> Self {
        Self {
            read: ReadOnlyCluster::from_client(client, server),
        }
    }

    /// The same cluster, without the right to write (for a plan).
    pub fn read_only(&self) -> &ReadOnlyCluster {
        &self.read
    }

    /// Server-side apply as `relbot`, forced, strictly validated.
    pub async fn apply(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.read
            .server_side_apply(kind, namespace, name, body, false)
            .await
    }

    /// Creates an object the server names (`generateName`, which an apply
    /// cannot address): only Argo CD hooks are written this way.
    pub async fn create(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.read
            .create_as_relbot(kind, namespace, body, false)
            .await
    }

    /// A JSON merge patch: for relbot's own bookkeeping on objects it does
    /// not apply (an Event's series count, a note on a status ConfigMap).
    pub async fn merge_patch(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.read.count_change(false);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(body);
        self.read
            .patch(kind, namespace, name, &patch, &params)
            .await
    }

    /// Deletes exactly the object with this uid (a re-created namesake is
    /// left alone), dependents in the background.
    pub async fn delete(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        name: &str,
        uid: Option<&str>,
        dependents: Dependents,
    ) -> Result<(), ApiFailure> {
        self.read.count_change(false);
        let mut params = match dependents {
            Dependents::Delete => DeleteParams::background(),
            Dependents::Keep => DeleteParams::orphan(),
        };
        if let Some(uid) = uid {
            params = params.preconditions(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            });
        }
        let request = Request::new(kind.collection_path(namespace)).delete(name, &params);
        absent_is_none(self.read.send(request).await).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
