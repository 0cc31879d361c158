//! Counting the replicas alive from their membership Leases
//! (`relbot-member-<identity>`), judged like any Lease: alive while its
//! record changed within its duration, on this replica's clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Preconditions};

use super::MEMBER_LEASE_PREFIX;

#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    resource_version: Option<String>,
}

pub(super) struct Members {
    leases: Api<Lease>,
    mine: String,
    duration: Duration,
    seen: std::sync::Mutex<HashMap<String, (Record, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot list the membership Leases: {} (does relbot's ServiceAccount have list/delete on leases.coordination.k8s.io?)",
    crate::cluster::kube_error::describe(.0)
)]
pub(super) struct MembersError(#[source] kube::Error);

impl Members {
    pub(super) fn new(leases: Api<Lease>, mine: String, duration: Duration) -> Self {
        Members {
            leases,
            mine,
            duration,
            seen: Default::default(),
        }
    }

    /// Every Lease of the namespace: one request a pass serves both the
    /// membership count and the shard Leases' expiry.
    pub(super) async fn list(&self) -> Result<Vec<Lease>, MembersError> {
        self.leases
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(MembersError)
    }

    /// Replicas alive among `leases`, this one included, and how long until
    /// the first of the others may expire (so the shard loop wakes then,
    /// not up to a retry period later). Membership Leases expired for twice
    /// their duration are deleted (a replica that is only slow creates its
    /// own again on its next pass).
    pub(super) async fn count(&self, leases: &[Lease]) -> (usize, Option<Duration>) {
        let now = Instant::now();
        let mut alive = 1;
        let mut next_expiry: Option<Duration> = None;
        let mut stale = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut present = Vec::new();
            for lease in leases.iter().cloned() {
                let Some(name) = lease.metadata.name.clone() else {
                    continue;
                };
                if !name.starts_with(MEMBER_LEASE_PREFIX) || name == self.mine {
                    continue;
                }
                let spec = lease.spec.unwrap_or_default();
                let record = Record {
                    holder: spec.holder_identity.filter(|h| !h.is_empty()),
                    renew_time: spec.renew_time.map(|t| t.0.to_string()),
                    resource_version: lease.metadata.resource_version.clone(),
                };
                let duration = spec
                    .lease_duration_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64))
                    .unwrap_or(self.duration);
                let since = match seen.get(&name) {
                    Some((old, since)) if *old == record => *since,
                    _ => now,
                };
                let age = now.duration_since(since);
                if record.holder.is_some() && age < duration {
                    alive += 1;
                    let left = duration - age;
                    next_expiry = Some(next_expiry.map_or(left, |n| n.min(left)));
                } else if age >= duration * 2 {
                    stale.push((name.clone(), record.resource_version.clone()));
                }
                present.push(name.clone());
                seen.insert(name, (record, since));
            }
            seen.retain(|name, _| present.contains(name));
        }
        for (name, version) in stale {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: version,
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            // Renewed meanwhile (409) or gone (404): nothing to do.
            if let Err(e) = self.leases.delete(&name, &params).await {
                tracing::debug!(lease = %name, "not deleting a stale membership Lease: {e}");
            } else {
                tracing::info!(lease = %name, "deleted the membership Lease of a replica gone for good");
            }
        }
        (alive, next_expiry)
    }

    /// Shutdown: this replica leaves at once.
    pub(super) async fn leave(&self) -> Result<(), MembersError> {
        match self
            .leases
            .delete(&self.mine, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(e) => Err(MembersError(e)),
        }
    }
}
