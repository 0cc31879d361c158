//! What a sync run is told: settings for the whole run (from relbot.yaml and
//! the caller) and the per-application settings derived from them. Kept apart
//! so the engine and the applier both read them without importing each other.

use std::time::Duration;

use crate::cluster::health::HealthRules;
use crate::config::{Application, Config};
use crate::progress::Progress;

/// Settings that apply to every application of a run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub concurrency: usize,
    /// Namespace of the per-application status ConfigMaps.
    pub status_namespace: String,
    /// Who hears how the run goes (nobody by default).
    pub progress: Progress,
    /// relbot.yaml's per-kind health rules.
    pub health_rules: HealthRules,
    /// Wait for the last wave to become healthy too. Waves before it are
    /// always gated; the last one gates nothing but the report, which serve
    /// wants and `relbot sync` (like `kubectl apply`) asks for with `--wait`.
    pub wait_for_last_wave: bool,
}

impl RunSettings {
    pub fn from_config(config: &Config) -> Self {
        RunSettings {
            concurrency: config.apply.concurrency.max(1),
            status_namespace: config.status.namespace.clone(),
            progress: Progress::none(),
            health_rules: HealthRules::new(&config.health),
            wait_for_last_wave: true,
        }
    }
}

/// Per-application settings of a sync.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub concurrency: usize,
    pub status_namespace: String,
    /// How long a wave may take to become healthy.
    pub health_timeout: Duration,
    /// How often an unhealthy wave is looked at again.
    pub poll_interval: Duration,
    /// Keep the result in the status ConfigMap.
    pub record_status: bool,
    /// Who hears how the run goes (nobody by default).
    pub progress: Progress,
    /// relbot.yaml's per-kind health rules, tried before the built-in ones.
    pub health_rules: HealthRules,
    /// Gate the last wave on health as well (see `RunSettings`).
    pub wait_for_last_wave: bool,
    /// What asked for this run, for the status record's history.
    pub trigger: String,
}

impl SyncSettings {
    pub fn new(app: &Application, run: &RunSettings) -> Self {
        SyncSettings {
            concurrency: run.concurrency.max(1),
            status_namespace: run.status_namespace.clone(),
            health_timeout: app.sync.health_timeout.0,
            poll_interval: Duration::from_millis(500),
            record_status: true,
            progress: run.progress.clone(),
            health_rules: run.health_rules.clone(),
            wait_for_last_wave: run.wait_for_last_wave,
            trigger: "relbot sync".into(),
        }
    }
}
