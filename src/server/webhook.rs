//! Webhook receivers as pure functions: GitHub signature checks, replay
//! detection, and the mapping from an event to [`Trigger`]s. The HTTP layer
//! ([`super::http`]) only moves bytes in and status codes out.
//!
//! Order matters for security: the GitHub signature is verified over the raw
//! body before anything in it is parsed, and a delivery id is remembered only
//! after its signature checked out (so unsigned requests cannot poison the
//! replay cache).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::trigger::{Selector, Trigger};
use crate::config::{Config, LoadedPolicy};
use crate::release::registry::ImageRef;
use crate::revision::short_revision;

/// A webhook secret or token. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `NAME` from the environment, else the contents of the file named by
    /// `NAME_FILE` (a mounted Kubernetes Secret), trimmed of a final newline.
    pub fn from_env(name: &str) -> Result<Option<Secret>, std::io::Error> {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            return Ok(Some(Secret(value)));
        }
        match std::env::var(format!("{name}_FILE")) {
            Ok(path) if !path.is_empty() => {
                // The io error alone ("No such file or directory") names
                // neither the file nor the variable that pointed at it.
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{name}_FILE={path}: {e}"))
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                Ok((!value.is_empty()).then_some(Secret(value)))
            }
            _ => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Environment variable holding the GitHub webhook secret (or `…_FILE`).
pub const GITHUB_SECRET_ENV: &str = "RELBOT_GITHUB_WEBHOOK_SECRET";
/// Environment variable holding the registry webhook path token (or `…_FILE`).
pub const REGISTRY_TOKEN_ENV: &str = "RELBOT_REGISTRY_WEBHOOK_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header (is the webhook secret set in GitHub?)")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error(
        "X-Hub-Signature-256 does not match the body (is the webhook secret the same on both sides?)"
    )]
    Mismatch,
    #[error("no webhook secret configured: set {GITHUB_SECRET_ENV} (or {GITHUB_SECRET_ENV}_FILE)")]
    NotConfigured,
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the
/// raw body with the shared secret). The comparison is constant-time.
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::NotConfigured)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (tests, and clients of the
/// "trigger by API" that want to sign their own requests).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// Compares two tokens in time independent of where they differ (and of
/// their lengths: both are hashed to 32 bytes first).
pub fn tokens_equal(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Recently seen `X-GitHub-Delivery` ids, oldest evicted first.
#[derive(Debug)]
pub struct DeliveryCache {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl DeliveryCache {
    pub fn new(capacity: usize) -> Self {
        DeliveryCache {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Remembers `id`; false when it was already seen (a replay).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What webhooks need to know of the configuration, rebuilt on reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// `owner/name` of the cluster-config repository, lowercase.
    pub repository: Option<String>,
    pub branch: String,
    /// Paths (relative to the repository root) whose change re-syncs everything:
    /// `relbot.yaml` and the policies directory.
    pub config_paths: Vec<PathBuf>,
    /// Application name and path, relative to the repository root.
    pub apps: Vec<(String, PathBuf)>,
    /// Policy name and the image it watches (policies whose image is not a
    /// valid reference cannot be bumped, so no webhook routes to them).
    pub policies: Vec<(String, ImageRef)>,
}

impl Routes {
    /// `config_file` is relbot.yaml's path relative to the repository root.
    pub fn from_config(config: &Config, policies: &[LoadedPolicy], config_file: &Path) -> Self {
        let base = config_file.parent().unwrap_or(Path::new(""));
        let repository = config
            .github
            .as_ref()
            .map(|g| g.repository.clone())
            .or_else(|| {
                config
                    .repo
                    .as_ref()
                    .and_then(|r| repository_from_url(&r.url))
            })
            .map(|r| r.to_ascii_lowercase());
        let mut config_paths = vec![config_file.to_path_buf()];
        if let Some(dir) = &config.policies {
            config_paths.push(normalize(&base.join(dir)));
        }
        Routes {
            repository,
            branch: config
                .repo
                .as_ref()
                .map(|r| r.branch.clone())
                .unwrap_or_else(|| "main".into()),
            config_paths,
            apps: config
                .applications
                .iter()
                .map(|a| (a.name.clone(), normalize(&base.join(&a.path))))
                .collect(),
            policies: policies
                .iter()
                .filter_map(|p| {
                    let image = ImageRef::parse(&p.policy.spec.image).ok()?;
                    Some((p.policy.metadata.name.clone(), image))
                })
                .collect(),
        }
    }

    fn is_our_repository(&self, full_name: Option<&str>) -> bool {
        match (&self.repository, full_name) {
            (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
            // Without a configured repository we cannot tell; accept.
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Applications whose directory contains one of `paths`; all of them
    /// when the configuration itself changed.
    pub fn apps_for_paths<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Selector<String> {
        let mut hit = BTreeSet::new();
        for changed in paths {
            let changed = Path::new(changed);
            if self.config_paths.iter().any(|c| changed.starts_with(c)) {
                return Selector::All;
            }
            for (name, path) in &self.apps {
                if changed.starts_with(path) {
                    hit.insert(name.clone());
                }
            }
        }
        Selector::Only(hit)
    }

    /// Policies watching `image` (any tag or digest).
    pub fn policies_for_image(&self, image: &ImageRef) -> BTreeSet<String> {
        self.policies
            .iter()
            .filter(|(_, i)| i.same_repository(image))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Policies watching the image written `text`, and the image's name
    /// for notes. Text that is not an image reference matches nothing.
    fn policies_for_text(&self, text: &str) -> (BTreeSet<String>, String) {
        match ImageRef::parse(text) {
            Ok(image) => (self.policies_for_image(&image), image.name()),
            Err(_) => (BTreeSet::new(), format!("{text:?} (not an image)")),
        }
    }

    /// Policies watching `<any host>/path` (when a notification names no host).
    fn policies_for_path(&self, path: &str) -> BTreeSet<String> {
        self.policies
            .iter()
            .filter(|(_, i)| i.repository == path)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Drops `.` components so `./manifests/x` and `manifests/x` compare equal.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `https://github.com/acme/x.git`, `git@github.com:acme/x.git` → `acme/x`.
pub fn repository_from_url(url: &str) -> Option<String> {
    let rest = url.trim_end_matches('/').trim_end_matches(".git");
    let rest = rest.split_once("://").map(|(_, r)| r).unwrap_or(rest);
    let rest = rest
        .split_once(':')
        .filter(|(host, _)| !host.contains('/'))
        .map(|(_, r)| r)
        .unwrap_or(rest);
    let parts: Vec<&str> = rest.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [name, owner, _host] if !name.is_empty() && !owner.is_empty() => {
            Some(format!("{owner}/{name}"))
        }
        [name, owner] if !name.is_empty() && !owner.is_empty() => Some(format!("{owner}/{name}")),
        _ => None,
    }
}

/// How a delivery was handled; also the `verdict` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Produced triggers.
    Accepted,
    /// Understood, but nothing to do (another branch, a path no application owns…).
    Ignored,
    /// An event relbot does not handle.
    UnknownEvent,
    /// Seen this delivery id before.
    Duplicate,
    BadSignature,
    TooLarge,
    Malformed,
    /// A registry push for an image no policy watches.
    NoMatch,
    Pong,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Ignored => "ignored",
            Verdict::UnknownEvent => "unknown_event",
            Verdict::Duplicate => "duplicate",
            Verdict::BadSignature => "bad_signature",
            Verdict::TooLarge => "too_large",
            Verdict::Malformed => "malformed",
            Verdict::NoMatch => "no_match",
            Verdict::Pong => "pong",
        }
    }
}

/// Result of routing one parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub verdict: Verdict,
    pub triggers: Vec<Trigger>,
    /// Why, for the log line.
    pub note: String,
}

impl Routed {
    fn accepted(trigger: Trigger, note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::Accepted,
            triggers: vec![trigger],
            note: note.into(),
        }
    }

    fn ignored(note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::Ignored,
            triggers: Vec::new(),
            note: note.into(),
        }
    }

    fn no_match(note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::NoMatch,
            triggers: Vec::new(),
            note: note.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot parse the {event} payload: {source}")]
pub struct PayloadError {
    pub event: String,
    #[source]
    pub source: serde_json::Error,
}

#[derive(Debug, Deserialize)]
struct RepositoryRef {
    full_name: Option<String>,
}

/// The fields of a `push` event relbot reads.
#[derive(Debug, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    pub repository: PushRepository,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
}

#[derive(Debug, Deserialize)]
pub struct PushRepository {
    pub full_name: String,
}

#[derive(Debug, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

/// GitHub lists at most this many commits in a push; beyond it the file
/// lists are incomplete and everything is re-synced.
const GITHUB_PUSH_COMMIT_LIMIT: usize = 2048;

/// Maps a verified GitHub event to triggers.
pub fn route_github_event(
    event: &str,
    body: &[u8],
    routes: &Routes,
) -> Result<Routed, PayloadError> {
    let parse_error = |source| PayloadError {
        event: event.to_string(),
        source,
    };
    match event {
        "ping" => Ok(Routed {
            verdict: Verdict::Pong,
            triggers: Vec::new(),
            note: "ping".into(),
        }),
        "push" => Ok(route_push(
            serde_json::from_slice(body).map_err(parse_error)?,
            routes,
        )),
        "pull_request" | "pull_request_review" | "check_suite" | "check_run" | "status" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_merge_signal(event, &value, routes))
        }
        "workflow_run" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_workflow_run(&value))
        }
        "repository_dispatch" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_dispatch(&value, routes))
        }
        "registry_package" | "package" => {
            let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
            Ok(route_package(&value, routes))
        }
        other => Ok(Routed {
            verdict: Verdict::UnknownEvent,
            triggers: Vec::new(),
            note: format!(
                "event {:?} is not handled",
                other.chars().take(64).collect::<String>()
            ),
        }),
    }
}

fn route_push(push: PushEvent, routes: &Routes) -> Routed {
    if !routes.is_our_repository(Some(&push.repository.full_name)) {
        return Routed::ignored(format!(
            "push to {}, not the configured repository",
            push.repository.full_name
        ));
    }
    let branch_ref = format!("refs/heads/{}", routes.branch);
    if push.git_ref != branch_ref {
        return Routed::ignored(format!("push to {}, not {branch_ref}", push.git_ref));
    }
    if push.deleted {
        return Routed::ignored("the branch was deleted; keeping the cluster as it is");
    }
    let revision = Some(push.after.clone());
    let complete_file_list = !push.forced
        && !push.created
        && !push.commits.is_empty()
        && push.commits.len() < GITHUB_PUSH_COMMIT_LIMIT;
    let apps = if complete_file_list {
        routes.apps_for_paths(
            push.commits
                .iter()
                .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
                .map(String::as_str),
        )
    } else {
        // A force-push, a new branch or a truncated list: the changed files
        // are unknown, so every application is checked.
        Selector::All
    };
    if apps.is_empty() {
        return Routed::ignored(format!(
            "push {} touched no application path",
            short_revision(&push.after)
        ));
    }
    let note = format!("push {} → sync {apps}", short_revision(&push.after));
    Routed::accepted(
        Trigger::Sync {
            apps,
            revision,
            reason: format!("push {}", short_revision(&push.after)),
        },
        note,
    )
}

fn route_merge_signal(event: &str, value: &Value, routes: &Routes) -> Routed {
    let repo: Option<RepositoryRef> = value
        .get("repository")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok());
    if !routes.is_our_repository(repo.as_ref().and_then(|r| r.full_name.as_deref())) {
        return Routed::ignored(format!("{event} from another repository"));
    }
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let prs: Selector<u64> = match event {
        "pull_request" | "pull_request_review" => {
            match value
                .pointer("/pull_request/number")
                .and_then(Value::as_u64)
            {
                Some(n) => Selector::only([n]),
                None => return Routed::ignored(format!("{event} without a pull request number")),
            }
        }
        "check_suite" | "check_run" => {
            if action != "completed" {
                return Routed::ignored(format!("{event} {action}: waiting for completion"));
            }
            let key = if event == "check_suite" {
                "/check_suite/pull_requests"
            } else {
                "/check_run/pull_requests"
            };
            let numbers: BTreeSet<u64> = value
                .pointer(key)
                .and_then(Value::as_array)
                .map(|prs| {
                    prs.iter()
                        .filter_map(|p| p.get("number").and_then(Value::as_u64))
                        .collect()
                })
                .unwrap_or_default();
            if numbers.is_empty() {
                Selector::All
            } else {
                Selector::Only(numbers)
            }
        }
        // `status` names a commit, not a pull request.
        _ => {
            let state = value.get("state").and_then(Value::as_str).unwrap_or("");
            if state == "pending" {
                return Routed::ignored("status pending");
            }
            Selector::All
        }
    };
    let note = format!("{event} {action} → continue merge of {prs}");
    Routed::accepted(
        Trigger::ContinueMerge {
            prs,
            reason: event.to_string(),
        },
        note,
    )
}

fn route_workflow_run(value: &Value) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let conclusion = value
        .pointer("/workflow_run/conclusion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if action != "completed" || conclusion != "success" {
        return Routed::ignored(format!("workflow_run {action} {conclusion}"));
    }
    let name = value
        .pointer("/workflow_run/name")
        .and_then(Value::as_str)
        .unwrap_or("workflow");
    Routed::accepted(
        Trigger::bump_all("workflow_run"),
        format!("workflow {name:?} succeeded → bump all"),
    )
}

/// `repository_dispatch` is the "trigger by API": `event_type` `relbot-sync`
/// syncs (`client_payload.applications` narrows it); anything else bumps
/// (`client_payload.policies` or `client_payload.images` narrow it).
fn route_dispatch(value: &Value, routes: &Routes) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    let payload = value.get("client_payload").cloned().unwrap_or(Value::Null);
    let strings = |key: &str| -> Option<BTreeSet<String>> {
        payload.get(key).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    if matches!(action, "relbot-sync" | "relbot.sync" | "sync") {
        let apps = strings("applications")
            .map(Selector::Only)
            .unwrap_or(Selector::All);
        let revision = payload
            .get("revision")
            .and_then(Value::as_str)
            .map(str::to_string);
        let note = format!("repository_dispatch {action} → sync {apps}");
        return Routed::accepted(
            Trigger::Sync {
                apps,
                revision,
                reason: "repository_dispatch".into(),
            },
            note,
        );
    }
    let mut policies = strings("policies");
    if let Some(images) = strings("images") {
        let matched = images.iter().flat_map(|i| routes.policies_for_text(i).0);
        policies.get_or_insert_with(BTreeSet::new).extend(matched);
    }
    let policies = match policies {
        Some(set) if set.is_empty() => {
            return Routed::no_match("repository_dispatch named no known policy or image");
        }
        Some(set) => Selector::Only(set),
        None => Selector::All,
    };
    let note = format!("repository_dispatch {action} → bump {policies}");
    Routed::accepted(
        Trigger::Bump {
            policies,
            reason: "repository_dispatch".into(),
        },
        note,
    )
}

/// GitHub Packages: a container version was published to ghcr.io.
fn route_package(value: &Value, routes: &Routes) -> Routed {
    let action = value.get("action").and_then(Value::as_str).unwrap_or("");
    if action != "published" && action != "updated" {
        return Routed::ignored(format!("package {action}"));
    }
    let package = value
        .get("registry_package")
        .or_else(|| value.get("package"))
        .unwrap_or(&Value::Null);
    let kind = package
        .get("package_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind != "container" && kind != "docker" {
        return Routed::ignored(format!("package of type {kind:?}, not a container"));
    }
    // GitHub reports owners as spelled (`Acme`); ghcr.io names are their
    // lower-case form.
    let image = package
        .pointer("/package_version/package_url")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            let name = package.get("name").and_then(Value::as_str)?;
            let owner = package
                .get("namespace")
                .and_then(Value::as_str)
                .or_else(|| package.pointer("/owner/login").and_then(Value::as_str))?;
            Some(format!("ghcr.io/{owner}/{name}").to_ascii_lowercase())
        });
    let Some(image) = image else {
        return Routed::ignored("package event without a name");
    };
    bump_for_images(&[image], routes, "registry_package")
}

fn bump_for_images(images: &[String], routes: &Routes, reason: &str) -> Routed {
    let mut policies = BTreeSet::new();
    let mut names = Vec::new();
    for image in images {
        let (matched, name) = routes.policies_for_text(image);
        policies.extend(matched);
        names.push(name);
    }
    if policies.is_empty() {
        return Routed::no_match(format!("no policy watches {}", names.join(", ")));
    }
    let selector = Selector::Only(policies);
    let note = format!("{} pushed → bump {selector}", names.join(", "));
    Routed::accepted(
        Trigger::Bump {
            policies: selector,
            reason: reason.to_string(),
        },
        note,
    )
}

/// Docker Hub's webhook body (unsigned; the path token authenticates it).
#[derive(Debug, Deserialize)]
struct DockerHubPush {
    push_data: DockerHubPushData,
    repository: DockerHubRepository,
}

#[derive(Debug, Deserialize)]
struct DockerHubPushData {
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DockerHubRepository {
    repo_name: String,
}

/// A distribution registry notification envelope.
#[derive(Debug, Deserialize)]
struct Notification {
    events: Vec<NotificationEvent>,
}

#[derive(Debug, Deserialize)]
struct NotificationEvent {
    action: String,
    #[serde(default)]
    target: NotificationTarget,
    #[serde(default)]
    request: NotificationRequest,
}

#[derive(Debug, Default, Deserialize)]
struct NotificationTarget {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NotificationRequest {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("not a Docker Hub webhook nor a registry notification: {0}")]
pub struct RegistryPayloadError(String);

/// Maps a registry webhook body (Docker Hub or distribution notifications)
/// to a bump of the policies watching the pushed image.
pub fn route_registry_event(body: &[u8], routes: &Routes) -> Result<Routed, RegistryPayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RegistryPayloadError(e.to_string()))?;
    if value.get("events").is_some() {
        let notification: Notification =
            serde_json::from_value(value).map_err(|e| RegistryPayloadError(e.to_string()))?;
        let mut policies = BTreeSet::new();
        let mut images = Vec::new();
        for event in notification.events {
            // Blob uploads and pushes by digest carry no tag; only a tagged
            // manifest push can be a new version.
            if event.action != "push" || event.target.tag.as_deref().unwrap_or("").is_empty() {
                continue;
            }
            let matched = match &event.request.host {
                Some(host) => {
                    let (matched, name) =
                        routes.policies_for_text(&format!("{host}/{}", event.target.repository));
                    images.push(name);
                    matched
                }
                None => {
                    images.push(event.target.repository.clone());
                    routes.policies_for_path(&event.target.repository)
                }
            };
            policies.extend(matched);
        }
        if images.is_empty() {
            return Ok(Routed::ignored(
                "no tagged manifest push in the notification",
            ));
        }
        if policies.is_empty() {
            return Ok(Routed::no_match(format!(
                "no policy watches {}",
                images.join(", ")
            )));
        }
        let selector = Selector::Only(policies);
        let note = format!("{} pushed → bump {selector}", images.join(", "));
        return Ok(Routed::accepted(
            Trigger::Bump {
                policies: selector,
                reason: "registry notification".into(),
            },
            note,
        ));
    }
    let hub: DockerHubPush =
        serde_json::from_value(value).map_err(|e| RegistryPayloadError(e.to_string()))?;
    if hub.push_data.tag.as_deref().unwrap_or("").is_empty() {
        return Ok(Routed::ignored("Docker Hub push without a tag"));
    }
    Ok(bump_for_images(
        &[format!("docker.io/{}", hub.repository.repo_name)],
        routes,
        "docker hub",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routes() -> Routes {
        Routes {
            repository: Some("acme/cluster-config".into()),
            branch: "main".into(),
            config_paths: vec!["relbot.yaml".into(), "policies".into()],
            apps: vec![
                ("ahuora".into(), "manifests/ahuora".into()),
                ("platform".into(), "manifests/platform".into()),
            ],
            policies: [
                ("django-api", "docker.io/ahuora/django-api"),
                ("postgres", "postgres"),
                ("web", "ghcr.io/acme/web"),
                ("local", "localhost:5000/team/svc"),
            ]
            .into_iter()
            .map(|(name, image)| (name.to_string(), ImageRef::parse(image).unwrap()))
            .collect(),
        }
    }

    #[test]
    fn signature_round_trip_and_rejections() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let header = github_signature(b"s3cret", body);
        assert!(verify_github_signature(b"s3cret", body, Some(&header)).is_ok());
        assert_eq!(
            verify_github_signature(b"other", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", b"{}", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha256=abcd")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(
            verify_github_signature(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(header)
            )
            .is_ok()
        );
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn delivery_cache_remembers_and_evicts() {
        let mut cache = DeliveryCache::new(2);
        assert!(cache.first_time("a"));
        assert!(!cache.first_time("a"));
        assert!(cache.first_time("b"));
        assert!(cache.first_time("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.first_time("a"), "evicted ids are forgotten");
    }

    #[test]
    fn repository_names_from_urls() {
        assert_eq!(
            repository_from_url("https://github.com/acme/x.git").as_deref(),
            Some("acme/x")
        );
        assert_eq!(
            repository_from_url("git@github.com:acme/x.git").as_deref(),
            Some("acme/x")
        );
        assert_eq!(
            repository_from_url("https://github.com/acme/x/").as_deref(),
            Some("acme/x")
        );
    }

    fn push(files: &[&str]) -> Vec<u8> {
        json!({
            "ref": "refs/heads/main", "before": "a".repeat(40), "after": "b".repeat(40),
            "repository": {"full_name": "Acme/Cluster-Config"},
            "commits": [{"added": [], "modified": files, "removed": []}]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn push_triggers_only_touched_apps() {
        let routed = route_github_event(
            "push",
            &push(&["manifests/ahuora/deploy.yaml", "README.md"]),
            &routes(),
        )
        .unwrap();
        assert_eq!(routed.verdict, Verdict::Accepted);
        assert_eq!(
            routed.triggers,
            vec![Trigger::Sync {
                apps: Selector::only(["ahuora".to_string()]),
                revision: Some("b".repeat(40)),
                reason: format!("push {}", "b".repeat(12)),
            }]
        );
    }

    #[test]
    fn push_of_config_syncs_everything_and_unrelated_push_nothing() {
        let all = route_github_event("push", &push(&["policies/web.yaml"]), &routes()).unwrap();
        assert!(matches!(
            &all.triggers[0],
            Trigger::Sync {
                apps: Selector::All,
                ..
            }
        ));
        let none = route_github_event("push", &push(&["docs/readme.md"]), &routes()).unwrap();
        assert_eq!(none.verdict, Verdict::Ignored);
        assert!(none.triggers.is_empty());
        // A path sharing only a string prefix is not inside the app.
        let prefix =
            route_github_event("push", &push(&["manifests/ahuora-old/x.yaml"]), &routes()).unwrap();
        assert!(prefix.triggers.is_empty());
    }

    #[test]
    fn push_elsewhere_is_ignored_and_force_push_syncs_all() {
        let mut other: Value = serde_json::from_slice(&push(&["manifests/ahuora/a.yaml"])).unwrap();
        other["ref"] = json!("refs/heads/feature");
        let r = route_github_event("push", other.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(r.verdict, Verdict::Ignored);
        let mut forced: Value = serde_json::from_slice(&push(&["docs/x"])).unwrap();
        forced["forced"] = json!(true);
        let r = route_github_event("push", forced.to_string().as_bytes(), &routes()).unwrap();
        assert!(matches!(
            &r.triggers[0],
            Trigger::Sync {
                apps: Selector::All,
                ..
            }
        ));
        let mut repo: Value = serde_json::from_slice(&push(&["manifests/ahuora/a.yaml"])).unwrap();
        repo["repository"]["full_name"] = json!("evil/fork");
        assert_eq!(
            route_github_event("push", repo.to_string().as_bytes(), &routes())
                .unwrap()
                .verdict,
            Verdict::Ignored
        );
    }

    #[test]
    fn merge_signals_continue_merges() {
        let pr = json!({"action": "synchronize", "pull_request": {"number": 42}, "repository": {"full_name": "acme/cluster-config"}});
        let r = route_github_event("pull_request", pr.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::only([42]),
                reason: "pull_request".into()
            }
        );
        let suite = json!({"action": "completed", "check_suite": {"pull_requests": [{"number": 7}]}, "repository": {"full_name": "acme/cluster-config"}});
        let r = route_github_event("check_suite", suite.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::only([7]),
                reason: "check_suite".into()
            }
        );
        let status = json!({"state": "success", "sha": "abc", "repository": {"full_name": "acme/cluster-config"}});
        let r = route_github_event("status", status.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::ContinueMerge {
                prs: Selector::All,
                reason: "status".into()
            }
        );
    }

    #[test]
    fn api_triggers_bump() {
        let run = json!({"action": "completed", "workflow_run": {"name": "build", "conclusion": "success"}});
        let r = route_github_event("workflow_run", run.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(r.triggers, vec![Trigger::bump_all("workflow_run")]);
        let failed = json!({"action": "completed", "workflow_run": {"name": "build", "conclusion": "failure"}});
        assert!(
            route_github_event("workflow_run", failed.to_string().as_bytes(), &routes())
                .unwrap()
                .triggers
                .is_empty()
        );
        let dispatch = json!({"action": "new-image", "client_payload": {"images": ["ghcr.io/acme/web:1.2.3"]}});
        let r = route_github_event(
            "repository_dispatch",
            dispatch.to_string().as_bytes(),
            &routes(),
        )
        .unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["web".to_string()]),
                reason: "repository_dispatch".into()
            }
        );
        let sync =
            json!({"action": "relbot-sync", "client_payload": {"applications": ["platform"]}});
        let r = route_github_event(
            "repository_dispatch",
            sync.to_string().as_bytes(),
            &routes(),
        )
        .unwrap();
        assert!(
            matches!(&r.triggers[0], Trigger::Sync { apps: Selector::Only(a), .. } if a.contains("platform"))
        );
        let package = json!({"action": "published", "registry_package": {"name": "web", "namespace": "acme", "package_type": "CONTAINER"}});
        let r = route_github_event(
            "registry_package",
            package.to_string().as_bytes(),
            &routes(),
        )
        .unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["web".to_string()]),
                reason: "registry_package".into()
            }
        );
        // GitHub spells the owner as the account does; ghcr.io lower-cases it.
        for package in [
            json!({"action": "published", "registry_package": {"name": "web", "owner": {"login": "Acme"}, "package_type": "container"}}),
            json!({"action": "published", "registry_package": {"name": "web", "package_type": "container", "package_version": {"package_url": "ghcr.io/Acme/web:1.0"}}}),
        ] {
            let r = route_github_event(
                "registry_package",
                package.to_string().as_bytes(),
                &routes(),
            )
            .unwrap();
            assert_eq!(r.verdict, Verdict::Accepted, "{package}");
        }
        let unknown = json!({"action": "x", "client_payload": {"images": ["Not An Image"]}});
        let r = route_github_event(
            "repository_dispatch",
            unknown.to_string().as_bytes(),
            &routes(),
        )
        .unwrap();
        assert_eq!(r.verdict, Verdict::NoMatch);
    }

    #[test]
    fn unknown_events_and_bad_payloads() {
        let r = route_github_event("star", b"{}", &routes()).unwrap();
        assert_eq!(r.verdict, Verdict::UnknownEvent);
        assert!(route_github_event("push", b"not json", &routes()).is_err());
    }

    #[test]
    fn docker_hub_webhook_matches_policy() {
        let body = json!({"push_data": {"tag": "0.3.1", "pusher": "ci"}, "repository": {"repo_name": "ahuora/django-api", "name": "django-api", "namespace": "ahuora"}});
        let r = route_registry_event(body.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["django-api".to_string()]),
                reason: "docker hub".into()
            }
        );
        let official =
            json!({"push_data": {"tag": "16.4"}, "repository": {"repo_name": "library/postgres"}});
        let r = route_registry_event(official.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["postgres".to_string()]),
                reason: "docker hub".into()
            }
        );
        let unknown =
            json!({"push_data": {"tag": "1"}, "repository": {"repo_name": "someone/else"}});
        assert_eq!(
            route_registry_event(unknown.to_string().as_bytes(), &routes())
                .unwrap()
                .verdict,
            Verdict::NoMatch
        );
    }

    #[test]
    fn distribution_notifications_match_by_host_and_repository() {
        let body = json!({"events": [
            {"action": "push", "target": {"mediaType": "application/octet-stream", "repository": "team/svc"}, "request": {"host": "127.0.0.1:5000"}},
            {"action": "push", "target": {"repository": "team/svc", "tag": "1.4.0"}, "request": {"host": "127.0.0.1:5000"}},
            {"action": "pull", "target": {"repository": "ahuora/django-api", "tag": "1"}, "request": {"host": "docker.io"}}
        ]});
        let r = route_registry_event(body.to_string().as_bytes(), &routes()).unwrap();
        assert_eq!(
            r.triggers[0],
            Trigger::Bump {
                policies: Selector::only(["local".to_string()]),
                reason: "registry notification".into()
            }
        );
        let blobs_only = json!({"events": [{"action": "push", "target": {"repository": "team/svc"}, "request": {"host": "x"}}]});
        assert_eq!(
            route_registry_event(blobs_only.to_string().as_bytes(), &routes())
                .unwrap()
                .verdict,
            Verdict::Ignored
        );
        assert!(route_registry_event(b"[]", &routes()).is_err());
    }

    #[test]
    fn routes_from_config_resolve_paths() {
        let config: Config = serde_json::from_value(json!({
            "repo": {"url": "https://github.com/Acme/cluster-config.git", "branch": "prod"},
            "applications": [{"name": "a", "path": "./manifests/a"}],
            "policies": "policies/"
        }))
        .unwrap();
        let routes = Routes::from_config(&config, &[], Path::new("relbot.yaml"));
        assert_eq!(routes.repository.as_deref(), Some("acme/cluster-config"));
        assert_eq!(routes.branch, "prod");
        assert_eq!(
            routes.apps,
            vec![("a".to_string(), PathBuf::from("manifests/a"))]
        );
        assert_eq!(routes.apps_for_paths(["policies/x.yaml"]), Selector::All);
    }
}
