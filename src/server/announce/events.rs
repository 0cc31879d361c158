//! Kubernetes Events (`events.k8s.io/v1`) on an application's status
//! ConfigMap, so `kubectl get events -n relbot` (and `kubectl describe cm
//! relbot-status-<app>`) tell the story of its syncs, as Flux controllers do.
//!
//! Written by hand rather than with kube's `Recorder`: the Recorder folds
//! every event with the same reason into one series and keeps the first
//! note, so "Synced revision def" would read "Synced revision abc ×2". Here
//! only an identical reason *and* note becomes a series (a failure that
//! repeats every poll is one event with a count, not a screenful).
//!
//! Best effort: an Event that cannot be written is logged at debug and
//! never fails the sync (RBAC: `create`, `patch` on `events.k8s.io/events`
//! in relbot's namespace, in deploy/rbac.yaml).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::discovery::ApiResource;
use serde_json::json;

use crate::cluster::client::Cluster;
use crate::cluster::discovery::ResolvedKind;
use crate::sync::status::config_map_name;

/// Who writes the events (`reportingController`, a qualified name).
pub const REPORTING_CONTROLLER: &str = "relbot.dev/relbot";
/// The API server takes at most 1 kB of note.
const NOTE_BYTES: usize = 1024;
/// How long a repeated event is counted on the first one; the API server
/// keeps events an hour by default, so a series never outlives its event.
const SERIES_WINDOW: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One event about one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEvent {
    pub type_: EventType,
    /// `SyncStarted`, `Synced`, `SyncFailed`, `Degraded`, `Recovered`.
    pub reason: &'static str,
    pub note: String,
}

/// (namespace, application, reason, note): what makes two events one series.
type SeriesKey = (String, String, &'static str, String);

struct Series {
    name: String,
    count: u32,
    first: Instant,
}

pub struct EventWriter {
    cluster: Cluster,
    instance: String,
    /// The event that counts each key's repeats.
    series: Mutex<HashMap<SeriesKey, Series>>,
    /// The first refusal is a warning (usually RBAC); later ones are debug
    /// lines, so a cluster without the grant is not flooded every run.
    warned: AtomicBool,
}

fn events_kind() -> ResolvedKind {
    ResolvedKind {
        resource: ApiResource {
            group: "events.k8s.io".into(),
            version: "v1".into(),
            api_version: "events.k8s.io/v1".into(),
            kind: "Event".into(),
            plural: "events".into(),
        },
        namespaced: true,
        pending: false,
    }
}

fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn micro_time(now: chrono::DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl EventWriter {
    /// `instance`: this replica (the Lease identity), `reportingInstance`.
    pub fn new(cluster: Cluster, instance: &str) -> Self {
        EventWriter {
            cluster,
            instance: instance.chars().take(128).collect(),
            series: Mutex::default(),
            warned: AtomicBool::new(false),
        }
    }

    /// Writes `event` about `application`'s status ConfigMap in `namespace`.
    pub async fn publish(&self, namespace: &str, application: &str, event: &SyncEvent) {
        let note = cut_bytes(&crate::redact::redact_userinfo(&event.note), NOTE_BYTES);
        let key = (
            namespace.to_string(),
            application.to_string(),
            event.reason,
            note.clone(),
        );
        let kind = events_kind();
        let now = Utc::now();
        let repeat = {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            series.retain(|_, s| s.first.elapsed() < SERIES_WINDOW);
            series.get_mut(&key).map(|s| {
                s.count += 1;
                (s.name.clone(), s.count)
            })
        };
        if let Some((name, count)) = repeat {
            let patch = json!({"series": {"count": count, "lastObservedTime": micro_time(now)}});
            match self
                .cluster
                .merge_patch(&kind, Some(namespace), &name, &patch)
                .await
            {
                Ok(_) => return,
                // Gone (expired early, deleted): a new one below.
                Err(e) => tracing::debug!(event = %name, "could not count a repeated event: {e}"),
            }
        }
        let regarding = config_map_name(application);
        let name = format!(
            "{regarding}.{:x}",
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let body = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": micro_time(now),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": "Sync",
            "reason": event.reason,
            "note": note,
            "type": match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            },
            "regarding": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespace": namespace,
                "name": regarding,
            },
        });
        match self.cluster.create(&kind, Some(namespace), &body).await {
            Ok(_) => {
                let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
                series.insert(
                    key,
                    Series {
                        name,
                        count: 1,
                        first: Instant::now(),
                    },
                );
            }
            Err(e) if !self.warned.swap(true, Ordering::Relaxed) => tracing::warn!(
                application,
                reason = event.reason,
                "could not write a Kubernetes Event in namespace {namespace}: {e}; relbot needs create and patch on events.k8s.io events there (deploy/rbac.yaml); syncs go on without Events"
            ),
            Err(e) => tracing::debug!(
                application,
                reason = event.reason,
                "could not write a Kubernetes Event in {namespace}: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_the_servers_limit_on_a_character_boundary() {
        let long = "é".repeat(700);
        let cut = cut_bytes(&long, NOTE_BYTES);
        assert!(cut.len() <= NOTE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(cut_bytes("short", NOTE_BYTES), "short");
    }
}
