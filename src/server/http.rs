//! The axum router: webhooks, `/healthz`, `/readyz`, `/metrics` and the
//! status page. Handlers answer fast; the work happens in the update queue.
//!
//! Nothing here logs a request path: the registry webhook carries its token
//! in the path.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use tokio::sync::watch;

use super::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics, webhook_event_label};
use super::page::store::PageStore;
use super::queue::{LeaderState, UpdateQueue};
use super::status_page::StatusSnapshot;
use super::trigger::Trigger;
use super::webhook::{
    DeliveryCache, Routed, Routes, Secret, Verdict, route_github_event, route_registry_event,
    verify_github_signature,
};

/// Default cap on webhook bodies (GitHub caps payloads at 25 MB, but relbot
/// needs only the small events it handles).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Delivery ids remembered for replay detection.
const DELIVERY_CACHE_SIZE: usize = 4096;

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub body_limit: usize,
    /// `RELBOT_GITHUB_WEBHOOK_SECRET`; without it GitHub deliveries get 401.
    pub github_secret: Option<Secret>,
    /// `RELBOT_REGISTRY_WEBHOOK_TOKEN`; without it the registry route is 404.
    pub registry_token: Option<Secret>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit: DEFAULT_BODY_LIMIT,
            github_secret: None,
            registry_token: None,
        }
    }
}

impl HttpSettings {
    /// Secrets from `RELBOT_GITHUB_WEBHOOK_SECRET` and
    /// `RELBOT_REGISTRY_WEBHOOK_TOKEN` (or the files named by their `…_FILE`
    /// variants, e.g. a mounted Secret); the default body limit.
    pub fn from_env() -> Result<Self, std::io::Error> {
        Ok(HttpSettings {
            body_limit: DEFAULT_BODY_LIMIT,
            github_secret: Secret::from_env(super::webhook::GITHUB_SECRET_ENV)?,
            registry_token: Secret::from_env(super::webhook::REGISTRY_TOKEN_ENV)?,
        })
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting
/// and lets in-flight requests finish (axum's graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Conditions that must all hold before `/readyz` answers 200, e.g. `fetch`
/// (first successful fetch) and, in a cluster, `discovery`.
pub struct Readiness {
    waiting: Mutex<BTreeSet<String>>,
    metrics: Arc<Metrics>,
}

impl Readiness {
    pub fn new(
        conditions: impl IntoIterator<Item = impl Into<String>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let waiting: BTreeSet<String> = conditions.into_iter().map(Into::into).collect();
        metrics
            .ready
            .set(&[], if waiting.is_empty() { 1.0 } else { 0.0 });
        Readiness {
            waiting: Mutex::new(waiting),
            metrics,
        }
    }

    /// Marks a condition met (idempotent).
    pub fn mark(&self, condition: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.remove(condition);
        if waiting.is_empty() {
            self.metrics.ready.set(&[], 1.0);
        }
    }

    /// Marks a condition unmet again (e.g. the Lease became unreachable).
    pub fn unmark(&self, condition: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.insert(condition.to_string()) {
            self.metrics.ready.set(&[], 0.0);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn waiting_for(&self) -> Vec<String> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Everything handlers share. The wiring keeps a clone to publish status
/// and routes.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    queue: UpdateQueue,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    leader: LeaderState,
    settings: HttpSettings,
    routes: watch::Sender<Arc<Routes>>,
    status: RwLock<StatusSnapshot>,
    deliveries: Mutex<DeliveryCache>,
    pages: PageStore,
    /// Where webhook triggers go instead of the local queue (a sharded
    /// replica forwards what it does not hold).
    submit: std::sync::OnceLock<Submit>,
}

type Submit = Arc<dyn Fn(Trigger) -> Option<u64> + Send + Sync>;

impl AppState {
    pub fn new(
        queue: UpdateQueue,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        leader: LeaderState,
        routes: Routes,
        settings: HttpSettings,
    ) -> Self {
        let (routes, _) = watch::channel(Arc::new(routes));
        AppState {
            inner: Arc::new(Shared {
                queue,
                metrics,
                readiness,
                leader,
                settings,
                routes,
                status: RwLock::new(StatusSnapshot::default()),
                deliveries: Mutex::new(DeliveryCache::new(DELIVERY_CACHE_SIZE)),
                pages: PageStore::default(),
                submit: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Replaces the routing tables (after a config reload).
    pub fn set_routes(&self, routes: Routes) {
        self.inner.routes.send_replace(Arc::new(routes));
    }

    /// Edits the status shown at `/`.
    pub fn update_status(&self, edit: impl FnOnce(&mut StatusSnapshot)) {
        let mut status = self.inner.status.write().unwrap_or_else(|e| e.into_inner());
        edit(&mut status);
    }

    pub fn status(&self) -> StatusSnapshot {
        self.inner
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn queue(&self) -> &UpdateQueue {
        &self.inner.queue
    }

    /// Sends webhook triggers through `submit` instead of the local queue.
    pub fn set_submit(&self, submit: impl Fn(Trigger) -> Option<u64> + Send + Sync + 'static) {
        let _ = self.inner.submit.set(Arc::new(submit));
    }

    /// Queues a trigger from outside (webhooks, merged PRs): the local
    /// queue, or wherever `set_submit` routes it.
    pub fn submit(&self, trigger: Trigger) -> Option<u64> {
        match self.inner.submit.get() {
            Some(submit) => submit(trigger),
            None => self.inner.queue.submit(trigger),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.inner.readiness
    }

    /// Runs, objects and live events behind the pages.
    pub fn pages(&self) -> &PageStore {
        &self.inner.pages
    }

    pub fn is_leader(&self) -> bool {
        self.inner.leader.is_leader()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/github", post(github_webhook))
        .route("/webhooks/registry/{token}", post(registry_webhook))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let waiting = state.inner.readiness.waiting_for();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}\n", waiting.join(", ")),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.inner.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(METRICS_CONTENT_TYPE),
    );
    response
}

/// Reads at most `limit` bytes; `Err(())` when the body is larger.
async fn read_capped(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if bytes.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

enum BodyError {
    TooLarge,
    Broken,
}

fn body_error(state: &AppState, event: &'static str, error: BodyError, limit: usize) -> Response {
    match error {
        BodyError::TooLarge => {
            state
                .inner
                .metrics
                .webhook_deliveries
                .inc(&[event, Verdict::TooLarge.label()]);
            tracing::warn!(event, limit, "webhook body over the size limit; rejected");
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes\n"),
            )
                .into_response()
        }
        BodyError::Broken => {
            state
                .inner
                .metrics
                .webhook_deliveries
                .inc(&[event, Verdict::Malformed.label()]);
            (StatusCode::BAD_REQUEST, "could not read the body\n").into_response()
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github_webhook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let event_name = header_str(&headers, "x-github-event")
        .unwrap_or("")
        .to_string();
    let event = webhook_event_label(&event_name);
    let metrics = &state.inner.metrics;
    let reject = |verdict: Verdict, status: StatusCode, message: String| {
        metrics.webhook_deliveries.inc(&[event, verdict.label()]);
        tracing::warn!(event, verdict = verdict.label(), "{message}");
        (status, format!("{message}\n")).into_response()
    };
    let Some(secret) = &state.inner.settings.github_secret else {
        return reject(
            Verdict::BadSignature,
            StatusCode::UNAUTHORIZED,
            super::webhook::SignatureError::NotConfigured.to_string(),
        );
    };
    // Reject unsigned requests before reading their bodies.
    let signature = header_str(&headers, "x-hub-signature-256").map(str::to_string);
    if signature.is_none() {
        return reject(
            Verdict::BadSignature,
            StatusCode::UNAUTHORIZED,
            super::webhook::SignatureError::Missing.to_string(),
        );
    }
    let limit = state.inner.settings.body_limit;
    let bytes = match read_capped(&headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return body_error(&state, event, e, limit),
    };
    if let Err(e) =
        verify_github_signature(secret.expose().as_bytes(), &bytes, signature.as_deref())
    {
        return reject(
            Verdict::BadSignature,
            StatusCode::UNAUTHORIZED,
            e.to_string(),
        );
    }
    let delivery = header_str(&headers, "x-github-delivery")
        .unwrap_or("")
        .to_string();
    if !delivery.is_empty() {
        let first = state
            .inner
            .deliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_time(&delivery);
        if !first {
            metrics
                .webhook_deliveries
                .inc(&[event, Verdict::Duplicate.label()]);
            tracing::info!(event, delivery, "replayed delivery ignored");
            return (StatusCode::OK, "duplicate delivery ignored\n").into_response();
        }
    }
    if event_name.is_empty() {
        return reject(
            Verdict::Malformed,
            StatusCode::BAD_REQUEST,
            "no X-GitHub-Event header".into(),
        );
    }
    let payload = match github_payload(header_str(&headers, "content-type"), &bytes) {
        Ok(payload) => payload,
        Err(message) => return reject(Verdict::Malformed, StatusCode::BAD_REQUEST, message),
    };
    let routes = state.inner.routes.borrow().clone();
    match route_github_event(&event_name, &payload, &routes) {
        Ok(routed) => dispatch(&state, event, &delivery, routed),
        Err(e) => reject(Verdict::Malformed, StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// The JSON of a GitHub delivery. A repository webhook left at GitHub's
/// default content type sends `payload=<url-encoded JSON>` as a form; the
/// signature covers the form as sent, so this runs after verification.
fn github_payload<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let is_form = content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !is_form {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, json)| std::borrow::Cow::Owned(json.into_owned().into_bytes()))
        .ok_or_else(|| "a form-encoded delivery without a `payload` field".to_string())
}

async fn registry_webhook(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const EVENT: &str = "registry";
    let metrics = &state.inner.metrics;
    let Some(expected) = &state.inner.settings.registry_token else {
        metrics
            .webhook_deliveries
            .inc(&[EVENT, Verdict::BadSignature.label()]);
        tracing::warn!(
            "registry webhook called but {} is not set; rejected",
            super::webhook::REGISTRY_TOKEN_ENV
        );
        return (StatusCode::NOT_FOUND, "registry webhooks are not enabled\n").into_response();
    };
    if !super::webhook::tokens_equal(&token, expected.expose()) {
        metrics
            .webhook_deliveries
            .inc(&[EVENT, Verdict::BadSignature.label()]);
        tracing::warn!("registry webhook with a wrong token; rejected");
        return (StatusCode::UNAUTHORIZED, "bad token\n").into_response();
    }
    let limit = state.inner.settings.body_limit;
    let bytes = match read_capped(&headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return body_error(&state, EVENT, e, limit),
    };
    let routes = state.inner.routes.borrow().clone();
    match route_registry_event(&bytes, &routes) {
        Ok(routed) => dispatch(&state, EVENT, "", routed),
        Err(e) => {
            metrics
                .webhook_deliveries
                .inc(&[EVENT, Verdict::Malformed.label()]);
            tracing::warn!(event = EVENT, "{e}");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    }
}

/// Queues the triggers and answers at once.
fn dispatch(state: &AppState, event: &'static str, delivery: &str, routed: Routed) -> Response {
    state
        .inner
        .metrics
        .webhook_deliveries
        .inc(&[event, routed.verdict.label()]);
    let tickets: Vec<u64> = routed
        .triggers
        .into_iter()
        .filter_map(|t| state.submit(t))
        .collect();
    tracing::info!(
        event,
        delivery,
        verdict = routed.verdict.label(),
        ?tickets,
        "{}",
        routed.note
    );
    let status = if routed.verdict == Verdict::Pong {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        format!("{}: {}\n", routed.verdict.label(), routed.note),
    )
        .into_response()
}
