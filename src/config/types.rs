//! The configuration's shape. Field names are camelCase in YAML, as in
//! Kubernetes and Argo CD; unknown fields are errors, not silently ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{ConfigDuration, CronSchedule, HealthRule, VersionRange};

/// `relbot.yaml` at the root of the cluster-config repository.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub repo: Option<RepoConfig>,
    pub applications: Vec<Application>,
    #[serde(default)]
    pub github: Option<GithubConfig>,
    /// Directory of ImagePolicy files, relative to this file.
    #[serde(default)]
    pub policies: Option<PathBuf>,
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
    #[serde(default)]
    pub apply: ApplySettings,
    #[serde(default)]
    pub status: StatusSettings,
    /// Per-kind health rules, tried before relbot's built-in assessment.
    #[serde(default)]
    pub health: Vec<HealthRule>,
    /// Who else hears of failures, Degraded applications and recoveries.
    #[serde(default)]
    pub notifications: NotificationSettings,
    /// How `relbot serve` runs across replicas.
    #[serde(default)]
    pub serve: ServeSettings,
}

/// `serve:`: settings of `relbot serve` that every replica must share.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServeSettings {
    /// Split the applications across replicas into this many shards (one
    /// Lease each, `relbot-shard-<i>`); `--shards` / `RELBOT_SHARDS`
    /// override it. Absent: the `relbot` Lease holder syncs everything.
    /// Read at start: a change needs every replica restarted.
    #[serde(default)]
    pub shards: Option<u32>,
}

/// The most shards `serve.shards` and `--shards` accept: each is a Lease
/// renewed every 2 s.
pub const MAX_SHARDS: u32 = 256;

/// The git repository relbot syncs from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoConfig {
    /// `https://…`, `http://…` or `file://…`. A token for http(s) comes from
    /// `RELBOT_GIT_TOKEN` (or `RELBOT_GITHUB_TOKEN`), never from here.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Pin a commit or tag instead of following the branch head.
    #[serde(default)]
    pub revision: Option<String>,
    /// Poll interval; webhooks only make a run sooner.
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
}

fn default_branch() -> String {
    "main".into()
}

fn default_interval() -> ConfigDuration {
    ConfigDuration::from_secs(180)
}

/// One application: a directory of manifests synced as a unit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Application {
    /// DNS-1123 label; used in the tracking annotation and status names.
    pub name: String,
    /// Directory (relative to the repository root) with plain YAML/JSON or a
    /// `kustomization.yaml`.
    pub path: PathBuf,
    /// Default namespace for namespaced objects that do not name one.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Globs (relative to `path`) of files to read; default all YAML/JSON.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs (relative to `path`) of files to skip.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Fields handed to other owners (HPA replicas, injected sidecars…).
    #[serde(default)]
    pub ignore: Vec<IgnoreRule>,
    /// Another cluster to sync into; absent: the cluster relbot runs in
    /// (or `--kubeconfig` names). Kept with its place in relbot.yaml, so a
    /// bad value is reported at its line.
    #[serde(default)]
    pub destination: Option<Spanned<Destination>>,
}

impl Application {
    /// The other cluster this application syncs into, if any.
    pub fn destination(&self) -> Option<&Destination> {
        self.destination.as_ref().map(|d| &d.value)
    }
}

/// `applications[].destination`: a cluster reached with a kubeconfig kept
/// in a Secret of relbot's status namespace, the shape of Flux's
/// `spec.kubeConfig.secretRef` (Argo CD keeps the same thing in a cluster
/// Secret). Status records, Leases and Events stay on relbot's own cluster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    pub kube_config: KubeConfigRef,
}

impl Destination {
    /// The name people know the cluster by: the Secret's.
    pub fn name(&self) -> &str {
        &self.kube_config.secret_ref.name
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeConfigRef {
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in relbot's status namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    /// Flux's default key for a kubeconfig.
    #[serde(default = "default_kubeconfig_key")]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "value".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Apply on every trigger; when false, runs only report.
    #[serde(default = "yes")]
    pub automated: bool,
    #[serde(default = "yes")]
    pub prune: bool,
    #[serde(default = "yes")]
    pub self_heal: bool,
    #[serde(default)]
    pub create_namespace: bool,
    /// Also prune PersistentVolumeClaims (data!) when they leave git.
    #[serde(default)]
    pub prune_persistent_volume_claims: bool,
    /// Refuse a prune that would delete more than this share (percent) of
    /// the application's live objects.
    #[serde(default = "default_max_prune_percent")]
    pub max_prune_percent: u8,
    /// Health gate between waves: how long to wait for a wave to be healthy.
    #[serde(default = "default_health_timeout")]
    pub health_timeout: ConfigDuration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        Self {
            automated: true,
            prune: true,
            self_heal: true,
            create_namespace: false,
            prune_persistent_volume_claims: false,
            max_prune_percent: default_max_prune_percent(),
            health_timeout: default_health_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_max_prune_percent() -> u8 {
    50
}

fn default_health_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}

/// Drops fields from both the diff and the apply body (Argo CD's
/// `ignoreDifferences`). Empty selectors match everything.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IgnoreRule {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// RFC 6901 pointers, e.g. `/spec/replicas`.
    pub json_pointers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GithubConfig {
    /// `owner/name` of the cluster-config repository.
    pub repository: String,
    /// GitHub Enterprise or a test double; `RELBOT_GITHUB_API_URL` overrides.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default = "yes")]
    pub automerge: bool,
    #[serde(default)]
    pub merge_method: MergeMethod,
    /// Base branch for bump PRs; defaults to `repo.branch`.
    #[serde(default)]
    pub base_branch: Option<String>,
    #[serde(default)]
    pub commit_author: CommitAuthor,
    #[serde(default)]
    pub labels: Vec<String>,
    /// `relbot serve` sets a commit status `relbot/<application>` on each
    /// revision it syncs (pending, then success, failure or error).
    #[serde(default)]
    pub commit_statuses: bool,
    /// Where people reach relbot's status page (e.g.
    /// `https://relbot.example.com`): commit statuses link to the
    /// application's page there. Without it they carry no link.
    #[serde(default)]
    pub status_page_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    #[default]
    Squash,
    Merge,
    Rebase,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommitAuthor {
    pub name: String,
    pub email: String,
}

impl Default for CommitAuthor {
    fn default() -> Self {
        Self {
            name: "relbot".into(),
            email: "relbot@users.noreply.github.com".into(),
        }
    }
}

/// Per-registry settings; credentials come from the environment or a docker
/// `config.json`, never from here.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryConfig {
    /// `docker.io`, `ghcr.io`, `registry.local:5000`.
    pub host: String,
    /// Reach this host through another (a pull-through mirror).
    #[serde(default)]
    pub mirror: Option<String>,
    /// Plain HTTP for a non-loopback host.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplySettings {
    /// Applies in flight at once (kube speaks HTTP/1.1: one connection each).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for ApplySettings {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
        }
    }
}

fn default_concurrency() -> usize {
    8
}

/// Where sync results are kept for `relbot status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatusSettings {
    /// Namespace of the per-application result ConfigMaps (and the Lease).
    #[serde(default = "default_status_namespace")]
    pub namespace: String,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self {
            namespace: default_status_namespace(),
        }
    }
}

/// Opt-in notifications from `relbot serve`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationSettings {
    /// POST a JSON message (with a Slack-compatible `text`) when an
    /// application fails, turns Degraded or recovers. The URL is a secret
    /// (a Slack incoming-webhook URL is its own credential), so it comes
    /// from `RELBOT_NOTIFY_WEBHOOK_URL` (or `_FILE`), never from here.
    #[serde(default)]
    pub webhook: bool,
}

fn default_status_namespace() -> String {
    "relbot".into()
}

/// `policies/*.yaml`: which image to watch and which of its tags to take.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagePolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: PolicyMetadata,
    pub spec: ImagePolicySpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyMetadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagePolicySpec {
    /// Image repository without tag: `docker.io/ahuora/django-api`, `postgres`.
    pub image: String,
    /// Allowed versions, e.g. `>=0.1.0 <1.0.0`, `~16.4`, `^0.3 || ^1.0`.
    pub semver: VersionRange,
    /// Tags look like `<tagPrefix><version>`; only such tags are candidates.
    #[serde(default)]
    pub tag_prefix: String,
    /// Compatibility marker after the version (`-alpine`); when unset, the
    /// suffix of the tag in use is kept.
    #[serde(default)]
    pub tag_suffix: Option<String>,
    #[serde(default)]
    pub pre_release: bool,
    /// Only tags matching this regular expression are candidates.
    #[serde(default)]
    pub tag_pattern: Option<String>,
    /// What a floating tag in use (`16`, `16.4`) may move to.
    #[serde(default)]
    pub floating_tags: FloatingTags,
    /// Pin `image:tag@sha256:…` instead of the bare tag.
    #[serde(default)]
    pub pin_digest: bool,
    /// Globs (relative to the repository root) of files that may be edited.
    #[serde(default)]
    pub files: Vec<String>,
    /// Standard 5-field cron for scheduled checks.
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
    /// Overrides `github.automerge` for this policy.
    #[serde(default)]
    pub automerge: Option<bool>,
    /// The application these images belong to (health gate, PR summary,
    /// rollback).
    #[serde(default)]
    pub application: Option<String>,
    /// Revert a merged bump that leaves `application` Degraded.
    #[serde(default)]
    pub rollback: RollbackSettings,
}

/// `spec.rollback` of an ImagePolicy. On by default: a merged bump that
/// keeps the application Degraded for the whole grace period gets a revert
/// PR (which follows the policy's automerge, so with automerge off a person
/// still decides). Needs `application`, without which relbot cannot see the
/// application's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollbackSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long the application may stay Degraded after the bump before
    /// relbot reverts it (default 10m): long enough for a slow rollout.
    #[serde(default = "default_rollback_grace")]
    pub grace_period: ConfigDuration,
}

impl Default for RollbackSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            grace_period: default_rollback_grace(),
        }
    }
}

fn default_rollback_grace() -> ConfigDuration {
    ConfigDuration::from_secs(600)
}

/// What a tag with fewer than three numbers (`postgres:16`, `ubuntu:22.04`)
/// moves to. Tags always move to tags with the same suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloatingTags {
    /// The same number of parts, as Renovate does: `16` → `17`,
    /// `16.4` → `17.2`, `20240101` → `20240315`, `18.04` → `22.04`.
    #[default]
    Keep,
    /// The newest full version: `16` → `17.2.1`.
    Pin,
}

impl<'de> Deserialize<'de> for FloatingTags {
    /// `keep` or `pin`; also `true`/`false`, which before `keep` was the
    /// default meant exactly `keep`/`pin`, so older policies mean the same.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Words;
        impl serde::de::Visitor<'_> for Words {
            type Value = FloatingTags;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("keep or pin")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<FloatingTags, E> {
                Ok(if v {
                    FloatingTags::Keep
                } else {
                    FloatingTags::Pin
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FloatingTags, E> {
                match v {
                    "keep" => Ok(FloatingTags::Keep),
                    "pin" => Ok(FloatingTags::Pin),
                    _ => Err(E::custom(format!(
                        "floatingTags is {v}: write keep (16 -> 17, the default) or pin (16 -> 17.2.1)"
                    ))),
                }
            }
        }
        d.deserialize_any(Words)
    }
}

impl ImagePolicy {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}
