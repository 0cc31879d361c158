//! What the bumper learns of an application from the reconciler: its stored
//! sync result turned into an [`AppObservation`] (health, since when, the
//! synced revision, the objects that are not healthy and why). Shared by
//! `relbot serve` (from its status record) and `relbot bump` (from the
//! status ConfigMaps).

use crate::cluster::health::HealthStatus;
use crate::release::bump::{AppObservation, UnhealthyObject};
use crate::sync::result::SyncResult;

/// The objects of `result` whose health does not pass a gate, worst first.
/// Secrets are left out whatever their health (their status could echo
/// data), and only health messages are kept: never a diff or a value.
pub fn unhealthy_objects(result: &SyncResult) -> Vec<UnhealthyObject> {
    let mut objects: Vec<(HealthStatus, UnhealthyObject)> = result
        .objects
        .iter()
        .filter(|o| !(o.key.group.is_empty() && o.key.kind == "Secret"))
        .filter_map(|o| {
            let health = o.health.as_ref().filter(|h| !h.status.passes_gate())?;
            Some((
                health.status,
                UnhealthyObject {
                    object: o.key.to_string(),
                    health: health.status,
                    reason: health.message.clone(),
                },
            ))
        })
        .collect();
    objects.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.object.cmp(&b.1.object)));
    objects.into_iter().map(|(_, o)| o).collect()
}

/// The whole observation of one stored result.
pub fn observation(result: &SyncResult) -> AppObservation {
    AppObservation {
        health: result.health,
        since: result.health_since,
        revision: result.revision.clone(),
        synced_at: Some(result.started_at),
        unhealthy: unhealthy_objects(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::fixture::{self, object};
    use crate::sync::result::{Effect, RunPhase};

    #[test]
    fn the_unhealthy_objects_are_named_with_their_reasons_worst_first_and_no_secrets() {
        let objects = vec![
            fixture::settings(),
            object(
                "Pod",
                "worker",
                Effect::Unchanged,
                HealthStatus::Progressing,
                "starting",
            ),
            object(
                "Deployment",
                "web",
                Effect::Unchanged,
                HealthStatus::Degraded,
                "ProgressDeadlineExceeded",
            ),
            object(
                "Secret",
                "token",
                Effect::Unchanged,
                HealthStatus::Degraded,
                "s3cr3t",
            ),
        ];
        let result = SyncResult {
            objects,
            ..fixture::result_with("shop", "abc", RunPhase::Failed, HealthStatus::Degraded)
        };
        let seen = observation(&result);
        assert_eq!(seen.health, HealthStatus::Degraded);
        assert_eq!(seen.revision.as_deref(), Some("abc"));
        let named: Vec<(&str, &str)> = seen
            .unhealthy
            .iter()
            .map(|o| (o.object.as_str(), o.reason.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("Deployment.apps shop/web", "ProgressDeadlineExceeded"),
                ("Pod shop/worker", "starting")
            ]
        );
    }
}
