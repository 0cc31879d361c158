//! Telling people about syncs where they already look, besides the status
//! page: Kubernetes Events on the application's status ConfigMap (always)
//! and a webhook notification (opt-in, `notifications.webhook`).
//!
//! Events: `SyncStarted` and `Synced` when a run brings a new revision or
//! changes objects (a no-op poll writes nothing), `SyncFailed` for each
//! failed run (repeats counted on one event), `Degraded` and `Recovered`
//! when the application's standing changes. The webhook hears only the
//! changes of standing (failed, Degraded, recovered), at most one message
//! per change: the standing last told is kept in memory and as an
//! annotation on the status ConfigMap, so a restart or a repeated run sends
//! nothing again. Nothing here ever fails a sync.

mod events;
pub mod notify;
pub mod standing;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cluster::client::Cluster;
use crate::config::LoadedConfig;
use crate::sync::result::{RunPhase, SyncResult};
use crate::sync::status;

pub use events::{EventType, EventWriter, REPORTING_CONTROLLER, SyncEvent};
use standing::{Change, Standing};

use super::metrics::Metrics;
use super::page::overview::url_segment;

/// The annotation on `relbot-status-<app>` with the standing last told.
pub const NOTIFIED_ANNOTATION: &str = "relbot.dev/notified-standing";

#[derive(Debug, Default, Clone)]
struct Memory {
    /// The revision of the last finished run.
    revision: Option<String>,
    /// The standing last told (None: never told, or not read yet).
    standing: Option<Standing>,
    /// The annotation was read (once per process and application).
    seeded: bool,
}

pub struct Announcer {
    cluster: Cluster,
    events: EventWriter,
    http: reqwest::Client,
    memory: Mutex<HashMap<String, Memory>>,
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}

impl Announcer {
    /// `instance`: this replica's name (the Lease identity).
    pub fn new(cluster: Cluster, instance: &str) -> Self {
        crate::tls::init();
        Announcer {
            events: EventWriter::new(cluster.clone(), instance),
            cluster,
            http: reqwest::Client::new(),
            memory: Mutex::default(),
        }
    }

    fn remembered(&self, application: &str) -> Memory {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.get(application).cloned().unwrap_or_default()
    }

    fn remember(&self, application: &str, update: impl FnOnce(&mut Memory)) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        update(memory.entry(application.to_string()).or_default());
    }

    /// Whether the last finished run of `application` (in this process)
    /// was at another revision: a run at the same one is a poll or a
    /// rollout looked at again, and announces no start.
    pub fn is_new_revision(&self, application: &str, revision: &str) -> bool {
        self.remembered(application).revision.as_deref() != Some(revision)
    }

    /// A run of `application` at `revision` begins.
    pub async fn started(
        &self,
        config: &LoadedConfig,
        application: &str,
        revision: &str,
        trigger: &str,
    ) {
        if !self.is_new_revision(application, revision) {
            return;
        }
        let event = SyncEvent {
            type_: EventType::Normal,
            reason: "SyncStarted",
            note: format!("syncing revision {} (asked by: {trigger})", short(revision)),
        };
        self.events
            .publish(&config.config.status.namespace, application, &event)
            .await;
    }

    /// A run ended with `result`.
    pub async fn finished(&self, config: &LoadedConfig, metrics: &Metrics, result: &SyncResult) {
        let namespace = &config.config.status.namespace;
        let app = result.application.as_str();
        let mut memory = self.remembered(app);
        if !memory.seeded {
            memory.standing = status::read_annotation(
                self.cluster.read_only(),
                namespace,
                app,
                NOTIFIED_ANNOTATION,
            )
            .await
            .and_then(|s| Standing::parse(&s));
            memory.seeded = true;
        }
        let revision = result
            .revision
            .as_deref()
            .map(short)
            .unwrap_or("(none)")
            .to_string();
        let counts = result.counts();
        let changed = counts.created + counts.updated + counts.recreated + counts.pruned > 0;
        if result.phase == RunPhase::Failed {
            let errors = crate::redact::redact_userinfo(&result.errors.join("; "));
            let event = SyncEvent {
                type_: EventType::Warning,
                reason: "SyncFailed",
                note: format!("revision {revision} failed: {errors}"),
            };
            self.events.publish(namespace, app, &event).await;
        } else if changed || memory.revision != result.revision {
            let event = SyncEvent {
                type_: EventType::Normal,
                reason: "Synced",
                note: format!(
                    "synced revision {revision}, {}: {}",
                    result.health.as_str(),
                    counts.summary()
                ),
            };
            self.events.publish(namespace, app, &event).await;
        }
        memory.revision = result.revision.clone();
        if let Some(now) = Standing::of(result)
            && let Some(change) = Change::between(memory.standing, now)
        {
            self.changed(config, metrics, result, change).await;
            memory.standing = Some(now);
            if let Err(e) = status::annotate(
                &self.cluster,
                namespace,
                app,
                NOTIFIED_ANNOTATION,
                now.as_str(),
            )
            .await
            {
                tracing::debug!(application = app, "could not note the standing told: {e}");
            }
        }
        self.remember(app, |m| *m = memory);
    }

    async fn changed(
        &self,
        config: &LoadedConfig,
        metrics: &Metrics,
        result: &SyncResult,
        change: Change,
    ) {
        let page = config
            .config
            .github
            .as_ref()
            .and_then(|g| g.status_page_url.as_deref())
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(|base| {
                format!(
                    "{}/applications/{}",
                    base.trim_end_matches('/'),
                    url_segment(&result.application)
                )
            });
        let body = notify::message(change, result, page.as_deref());
        let text = body["text"].as_str().unwrap_or_default().to_string();
        // The Failed change already has its SyncFailed event.
        let event = match change {
            Change::Failed => None,
            Change::Degraded => Some(SyncEvent {
                type_: EventType::Warning,
                reason: "Degraded",
                note: text.trim_start_matches("relbot: ").to_string(),
            }),
            Change::Recovered { .. } => Some(SyncEvent {
                type_: EventType::Normal,
                reason: "Recovered",
                note: text.trim_start_matches("relbot: ").to_string(),
            }),
        };
        if let Some(event) = event {
            self.events
                .publish(&config.config.status.namespace, &result.application, &event)
                .await;
        }
        if !config.config.notifications.webhook {
            return;
        }
        let url = notify::url_from_env(
            |name| std::env::var(name).ok(),
            |path| std::fs::read_to_string(path),
        );
        let sent = match url {
            Ok(url) => notify::post(&self.http, &url, &body).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                metrics.notifications.inc(&["sent"]);
                tracing::info!(
                    application = %result.application,
                    event = change.as_str(),
                    "notification sent"
                );
            }
            Err(e) => {
                metrics.notifications.inc(&["failed"]);
                tracing::warn!(
                    application = %result.application,
                    event = change.as_str(),
                    "{e}; the sync goes on"
                );
            }
        }
    }
}
