//! Sync results and their objects as the server's tests need them (a
//! status page, what the bumper observes).

use crate::cluster::health::{Health, HealthStatus};
use crate::manifest::{ObjectKey, Origin};
use crate::sync::plan::{Action, Reason};
use crate::sync::result::{Effect, ObjectOutcome, RunPhase, SyncResult};

/// A result of `application` at `revision` with no objects.
pub fn result_with(
    application: &str,
    revision: &str,
    phase: RunPhase,
    health: HealthStatus,
) -> SyncResult {
    SyncResult {
        application: application.into(),
        revision: Some(revision.into()),
        server: String::new(),
        started_at: chrono::Utc::now(),
        phase,
        health,
        health_since: None,
        hooks: Vec::new(),
        objects: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        requests: Default::default(),
        status_recorded: false,
        timings: Default::default(),
    }
}

/// ConfigMap `shop/settings`, unchanged and healthy: the object a test
/// has besides the ones it looks at.
pub fn settings() -> ObjectOutcome {
    object(
        "ConfigMap",
        "settings",
        Effect::Unchanged,
        HealthStatus::Healthy,
        "",
    )
}

/// An object of application `shop` from `apps/shop/deploy.yaml:12`, updated
/// for drift, with `health` for `why`.
pub fn object(
    kind: &str,
    name: &str,
    outcome: Effect,
    health: HealthStatus,
    why: &str,
) -> ObjectOutcome {
    ObjectOutcome {
        key: ObjectKey {
            group: if kind == "Deployment" {
                "apps".into()
            } else {
                String::new()
            },
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        },
        api_version: "v1".into(),
        origin: Some(Origin {
            file: "apps/shop/deploy.yaml".into(),
            line: 12,
        }),
        action: Action::Update,
        reason: Reason::Drift,
        outcome,
        diff: Some("  data:\n-   a: 1\n+   a: <b>2</b>\n".into()),
        health: Some(Health {
            status: health,
            message: why.into(),
        }),
    }
}
