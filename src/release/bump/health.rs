//! The merge gate's and the rollback's input: an application's health as
//! the reconciler last stored it. The bumper never walks the cluster itself;
//! the server hands it the reconciler's stored status, the CLI what it can
//! read (or nothing).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::cluster::health::HealthStatus;

/// Only a Degraded application holds merges back: merging more changes into
/// a broken application makes the breakage harder to read. Unknown (no
/// cluster reachable, never synced) does not block.
pub fn blocks_merge(health: HealthStatus) -> bool {
    health == HealthStatus::Degraded
}

/// The word the status page and its JSON show (`Degraded`), not the stored
/// status's camelCase.
fn health_word<S: Serializer>(health: &HealthStatus, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(health.as_str())
}

/// What the reconciler last stored about an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppObservation {
    #[serde(serialize_with = "health_word")]
    pub health: HealthStatus,
    /// Since when the application has had this health without a break
    /// (`None` when the stored status predates this record).
    pub since: Option<DateTime<Utc>>,
    /// The revision of the last sync, and when that sync started.
    pub revision: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
    /// The objects that are not healthy, with their reasons.
    pub unhealthy: Vec<UnhealthyObject>,
}

impl AppObservation {
    /// Only the health word is known.
    pub fn health_only(health: HealthStatus) -> Self {
        Self {
            health,
            since: None,
            revision: None,
            synced_at: None,
            unhealthy: Vec::new(),
        }
    }
}

/// One object that keeps an application from being healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnhealthyObject {
    /// `Deployment shop/web`.
    pub object: String,
    #[serde(serialize_with = "health_word")]
    pub health: HealthStatus,
    /// The object's own words (a condition's reason and message).
    pub reason: String,
}

/// Where the bumper learns an application's health.
pub trait HealthSource: Send + Sync {
    /// `None` when nothing is known about `application`.
    fn observe(&self, application: &str) -> Option<AppObservation>;

    fn health(&self, application: &str) -> Option<HealthStatus> {
        self.observe(application).map(|o| o.health)
    }
}

/// Knows nothing: every application's health is unknown (merges allowed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHealth;

impl HealthSource for NoHealth {
    fn observe(&self, _application: &str) -> Option<AppObservation> {
        None
    }
}

/// A fixed map, for callers that read the status once per run (and tests).
#[derive(Debug, Clone, Default)]
pub struct StaticHealth(pub HashMap<String, AppObservation>);

impl StaticHealth {
    pub fn with(self, application: &str, health: HealthStatus) -> Self {
        self.with_observation(application, AppObservation::health_only(health))
    }

    pub fn with_observation(mut self, application: &str, observation: AppObservation) -> Self {
        self.0.insert(application.to_string(), observation);
        self
    }
}

impl HealthSource for StaticHealth {
    fn observe(&self, application: &str) -> Option<AppObservation> {
        self.0.get(application).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_degraded_blocks() {
        assert!(blocks_merge(HealthStatus::parse("Degraded")));
        for word in ["Healthy", "progressing", "", "Missing", "weird"] {
            assert!(!blocks_merge(HealthStatus::parse(word)), "{word}");
        }
        let source = StaticHealth::default().with("platform", HealthStatus::Degraded);
        assert_eq!(source.health("platform"), Some(HealthStatus::Degraded));
        assert_eq!(source.health("other"), None);
        assert_eq!(NoHealth.health("platform"), None);
    }

    #[test]
    fn the_json_names_health_as_the_status_page_does() {
        let object = UnhealthyObject {
            object: "Deployment shop/web".into(),
            health: HealthStatus::Progressing,
            reason: "rolling out".into(),
        };
        let json = serde_json::to_value(AppObservation {
            unhealthy: vec![object],
            ..AppObservation::health_only(HealthStatus::Degraded)
        })
        .unwrap();
        assert_eq!(json["health"], "Degraded");
        assert_eq!(json["unhealthy"][0]["health"], "Progressing");
    }
}
