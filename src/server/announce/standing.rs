//! Where an application stands after a run, as far as people need telling:
//! Healthy, Failed or Degraded; and which changes of standing are news.

use crate::cluster::health::HealthStatus;
use crate::sync::result::{RunPhase, SyncResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Healthy,
    Failed,
    Degraded,
}

impl Standing {
    /// None for the states in between (Progressing, Missing, Unknown): a
    /// rollout under way is no news, its end is.
    ///
    /// Degraded wins over Failed: a rollout that goes Degraded fails its
    /// health gate too, and that is one piece of news (Degraded), not two
    /// (failed now, Degraded at the next run that applies nothing).
    pub fn of(result: &SyncResult) -> Option<Standing> {
        match (result.health, result.phase) {
            (HealthStatus::Degraded, _) => Some(Standing::Degraded),
            (_, RunPhase::Failed) => Some(Standing::Failed),
            (HealthStatus::Healthy | HealthStatus::Suspended, _) => Some(Standing::Healthy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Healthy => "Healthy",
            Standing::Failed => "Failed",
            Standing::Degraded => "Degraded",
        }
    }

    pub fn parse(text: &str) -> Option<Standing> {
        [Standing::Healthy, Standing::Failed, Standing::Degraded]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A change of standing worth a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Failed,
    Degraded,
    /// Back to Healthy from `from`.
    Recovered {
        from: Standing,
    },
}

impl Change {
    /// The change from `before` (None: never told anyone, taken as Healthy,
    /// so a first run that is fine is no news) to `now`.
    pub fn between(before: Option<Standing>, now: Standing) -> Option<Change> {
        let before = before.unwrap_or(Standing::Healthy);
        if before == now {
            return None;
        }
        Some(match now {
            Standing::Failed => Change::Failed,
            Standing::Degraded => Change::Degraded,
            Standing::Healthy => Change::Recovered { from: before },
        })
    }

    /// The word in a notification's `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Failed => "failed",
            Change::Degraded => "degraded",
            Change::Recovered { .. } => "recovered",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_standing_are_news() {
        use Standing::*;
        assert_eq!(Change::between(None, Healthy), None);
        assert_eq!(Change::between(None, Failed), Some(Change::Failed));
        assert_eq!(
            Change::between(Some(Healthy), Degraded),
            Some(Change::Degraded)
        );
        assert_eq!(Change::between(Some(Degraded), Degraded), None);
        assert_eq!(
            Change::between(Some(Degraded), Failed),
            Some(Change::Failed)
        );
        assert_eq!(
            Change::between(Some(Failed), Healthy),
            Some(Change::Recovered { from: Failed })
        );
        for s in [Healthy, Failed, Degraded] {
            assert_eq!(Standing::parse(s.as_str()), Some(s));
        }
        assert_eq!(Standing::parse("Progressing"), None);
    }
}
