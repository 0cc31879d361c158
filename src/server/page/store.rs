//! What the pages know beyond the [`StatusSnapshot`]: each application's
//! last full result (every object, unchanged ones too), its recent runs, and
//! whether a run is under way; plus the channel live pages listen on.
//!
//! [`StatusSnapshot`]: crate::server::status_page::StatusSnapshot

use std::collections::{BTreeMap, VecDeque};
use std::sync::{OnceLock, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use super::links::RepoLinks;
use crate::sync::result::SyncResult;
use crate::sync::status::{RUNS_KEPT, RunRecord};

/// Events kept for a slow listener before it is told to reload.
const EVENT_BUFFER: usize = 64;

/// One change a live page hears about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageEvent {
    /// `started` or `finished`.
    pub kind: &'static str,
    pub application: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `Synced`, `OutOfSync` or `Failed` once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    pub at: DateTime<Utc>,
}

/// One application's details.
#[derive(Debug, Clone, Default)]
pub struct AppDetail {
    /// The last run's full result (this process's; none before its first run).
    pub result: Option<SyncResult>,
    /// Newest first, at most [`RUNS_KEPT`].
    pub runs: VecDeque<RunRecord>,
    /// When the run under way started.
    pub running_since: Option<DateTime<Utc>>,
}

type LeaderName = Box<dyn Fn() -> Option<String> + Send + Sync>;

pub struct PageStore {
    apps: RwLock<BTreeMap<String, AppDetail>>,
    links: RwLock<RepoLinks>,
    events: broadcast::Sender<PageEvent>,
    leader_name: OnceLock<LeaderName>,
}

impl Default for PageStore {
    fn default() -> Self {
        PageStore {
            apps: RwLock::default(),
            links: RwLock::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
            leader_name: OnceLock::new(),
        }
    }
}

impl PageStore {
    /// Where revisions and source lines link to (follows config reloads).
    pub fn set_links(&self, links: RepoLinks) {
        *self.links.write().unwrap_or_else(|e| e.into_inner()) = links;
    }

    pub fn links(&self) -> RepoLinks {
        self.links.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Who holds the Lease, as the elector last saw it.
    pub fn set_leader_name(&self, source: impl Fn() -> Option<String> + Send + Sync + 'static) {
        let _ = self.leader_name.set(Box::new(source));
    }

    pub fn leader_name(&self) -> Option<String> {
        self.leader_name.get().and_then(|f| f())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<PageEvent> {
        self.events.subscribe()
    }

    /// Live pages connected now.
    pub fn listeners(&self) -> usize {
        self.events.receiver_count()
    }

    fn edit<T>(&self, application: &str, f: impl FnOnce(&mut AppDetail) -> T) -> T {
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        f(apps.entry(application.to_string()).or_default())
    }

    /// Fills an application's history from the status record, once: the
    /// runs of an earlier process (or replica) stay visible after a restart.
    pub fn seed_runs(&self, application: &str, stored: &[RunRecord]) {
        self.edit(application, |detail| {
            if detail.runs.is_empty() {
                detail.runs = stored.iter().take(RUNS_KEPT).cloned().collect();
            }
        });
    }

    /// Whether the history was already seeded or has runs.
    pub fn knows(&self, application: &str) -> bool {
        self.apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(application)
            .is_some_and(|d| d.result.is_some() || !d.runs.is_empty())
    }

    pub fn started(&self, application: &str, revision: Option<&str>) {
        let at = Utc::now();
        self.edit(application, |detail| detail.running_since = Some(at));
        let _ = self.events.send(PageEvent {
            kind: "started",
            application: application.to_string(),
            revision: revision.map(str::to_string),
            outcome: None,
            health: None,
            at,
        });
    }

    pub fn finished(&self, result: &SyncResult, trigger: &str) {
        let run = RunRecord::of(result, trigger);
        let event = PageEvent {
            kind: "finished",
            application: result.application.clone(),
            revision: result.revision.clone(),
            outcome: Some(run.outcome.clone()),
            health: Some(run.health.clone()),
            at: Utc::now(),
        };
        self.edit(&result.application, |detail| {
            detail.running_since = None;
            detail.result = Some(result.clone());
            detail.runs.push_front(run);
            detail.runs.truncate(RUNS_KEPT);
        });
        let _ = self.events.send(event);
    }

    /// Forgets applications no longer configured.
    pub fn retain(&self, configured: &[String]) {
        self.apps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| configured.contains(name));
    }

    pub fn detail(&self, application: &str) -> Option<AppDetail> {
        self.apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(application)
            .cloned()
    }

    /// Reads every application's details without copying them.
    pub fn with_all<T>(&self, f: impl FnOnce(&BTreeMap<String, AppDetail>) -> T) -> T {
        f(&self.apps.read().unwrap_or_else(|e| e.into_inner()))
    }
}
