//! The merge gate's input: an application's health as the reconciler last
//! stored it. The bumper never walks the cluster itself; the server hands it
//! the reconciler's stored status, the CLI what it can read (or nothing).

use std::collections::HashMap;

use serde::Serialize;

/// An application's health, in Argo CD's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AppHealth {
    Healthy,
    Progressing,
    Degraded,
    Suspended,
    Missing,
    Unknown,
}

impl AppHealth {
    /// Reads the status word the reconciler stores (`Healthy`, `degraded`…);
    /// anything else is `Unknown`.
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "healthy" => Self::Healthy,
            "progressing" => Self::Progressing,
            "degraded" => Self::Degraded,
            "suspended" => Self::Suspended,
            "missing" => Self::Missing,
            _ => Self::Unknown,
        }
    }

    /// Only a Degraded application holds merges back: merging more changes
    /// into a broken application makes the breakage harder to read. Unknown
    /// (no cluster reachable, never synced) does not block.
    pub fn blocks_merge(self) -> bool {
        self == Self::Degraded
    }
}

/// Where the bumper learns an application's health.
pub trait HealthSource: Send + Sync {
    /// `None` when nothing is known about `application`.
    fn health(&self, application: &str) -> Option<AppHealth>;
}

/// Knows nothing: every application's health is unknown (merges allowed).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHealth;

impl HealthSource for NoHealth {
    fn health(&self, _application: &str) -> Option<AppHealth> {
        None
    }
}

/// A fixed map, for callers that read the status once per run (and tests).
#[derive(Debug, Clone, Default)]
pub struct StaticHealth(pub HashMap<String, AppHealth>);

impl StaticHealth {
    pub fn with(mut self, application: &str, health: AppHealth) -> Self {
        self.0.insert(application.to_string(), health);
        self
    }
}

impl HealthSource for StaticHealth {
    fn health(&self, application: &str) -> Option<AppHealth> {
        self.0.get(application).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_degraded_blocks() {
        assert!(AppHealth::parse("Degraded").blocks_merge());
        for word in ["Healthy", "progressing", "", "Missing", "weird"] {
            assert!(!AppHealth::parse(word).blocks_merge(), "{word}");
        }
        let source = StaticHealth::default().with("platform", AppHealth::Degraded);
        assert_eq!(source.health("platform"), Some(AppHealth::Degraded));
        assert_eq!(source.health("other"), None);
        assert_eq!(NoHealth.health("platform"), None);
    }
}
