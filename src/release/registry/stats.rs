//! Counters of what the registry client sent, for metrics and run reports.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct RegistryStats {
    /// Requests sent to registry APIs (token requests not included).
    pub requests: AtomicU64,
    pub token_requests: AtomicU64,
    /// Tag-list pages read (fresh or 304).
    pub pages: AtomicU64,
    /// Pages the registry answered 304 Not Modified.
    pub not_modified: AtomicU64,
    /// Times we waited because a registry said 429.
    pub rate_limit_waits: AtomicU64,
    /// Retries after 5xx or 429.
    pub retries: AtomicU64,
}

/// A plain copy of [`RegistryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub token_requests: u64,
    pub pages: u64,
    pub not_modified: u64,
    pub rate_limit_waits: u64,
    pub retries: u64,
}

impl StatsSnapshot {
    /// What happened between `earlier` and this snapshot of the same client.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            token_requests: self.token_requests.saturating_sub(earlier.token_requests),
            pages: self.pages.saturating_sub(earlier.pages),
            not_modified: self.not_modified.saturating_sub(earlier.not_modified),
            rate_limit_waits: self
                .rate_limit_waits
                .saturating_sub(earlier.rate_limit_waits),
            retries: self.retries.saturating_sub(earlier.retries),
        }
    }
}

impl RegistryStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: get(&self.requests),
            token_requests: get(&self.token_requests),
            pages: get(&self.pages),
            not_modified: get(&self.not_modified),
            rate_limit_waits: get(&self.rate_limit_waits),
            retries: get(&self.retries),
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
