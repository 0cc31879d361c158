//! Where an object goes in a sync: its stage, its wave and its kind's rank.
//!
//! Stage 1 holds what other objects need to exist first (CRDs, Namespaces,
//! ClusterRoles), stage 2 the `*Class` kinds that objects refer to by name;
//! everything else is stage 3, ordered by wave (`relbot.dev/sync-wave`, or
//! Argo CD's `argocd.argoproj.io/sync-wave`) and then by Argo CD's kind order
//! so that a Service exists before the Deployment that its clients reach.
//! Prune walks the same order backwards.

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

pub const WAVE_ANNOTATION: &str = "relbot.dev/sync-wave";
pub const ARGO_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

/// A sort key: lower runs first. Serialized so plans show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Phase {
    pub stage: u8,
    pub wave: i64,
    #[serde(skip)]
    pub kind_rank: u16,
}

impl Phase {
    /// The gate between two phases: objects in the same stage and wave are
    /// applied together (kind order inside is kept by the apply order, not by
    /// waiting).
    pub fn step(&self) -> (u8, i64) {
        (self.stage, self.wave)
    }
}

/// Argo CD's kind order (gitops-engine `sync/sync_tasks.go`); kinds not
/// listed go after all listed ones.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

pub fn kind_rank(kind: &str) -> u16 {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len()) as u16
}

/// Stage of a kind: 1 for what everything else may need, 2 for `*Class`.
pub fn stage_of(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") | ("", "Namespace") => 1,
        ("rbac.authorization.k8s.io", "ClusterRole") => 1,
        (_, k) if k.ends_with("Class") => 2,
        _ => 3,
    }
}

/// The wave an object asked for; unparsable values count as 0 (the
/// renderer reports them with file:line).
pub fn wave_of(manifest: &Manifest) -> i64 {
    manifest
        .annotation(WAVE_ANNOTATION)
        .or_else(|| manifest.annotation(ARGO_WAVE_ANNOTATION))
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

pub fn phase_of(manifest: &Manifest) -> Phase {
    let stage = stage_of(manifest.group(), manifest.kind());
    Phase {
        stage,
        // Stages 1 and 2 run before every wave; a wave only orders stage 3.
        wave: if stage == 3 { wave_of(manifest) } else { 0 },
        kind_rank: kind_rank(manifest.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    fn m(api: &str, kind: &str, wave: Option<&str>) -> Manifest {
        let mut object = json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}});
        if let Some(w) = wave {
            object["metadata"]["annotations"] = json!({ ARGO_WAVE_ANNOTATION: w });
        }
        Manifest {
            object,
            origin: Origin {
                file: "f.yaml".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn stages_then_waves_then_kinds() {
        let crd = phase_of(&m(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
        ));
        let ns = phase_of(&m("v1", "Namespace", Some("5")));
        let class = phase_of(&m("networking.k8s.io/v1", "IngressClass", None));
        let svc = phase_of(&m("v1", "Service", None));
        let deploy = phase_of(&m("apps/v1", "Deployment", None));
        let early = phase_of(&m("apps/v1", "Deployment", Some("-1")));
        let custom = phase_of(&m("example.com/v1", "Widget", None));
        assert!(ns < crd, "Namespace ranks before CRD inside stage 1");
        assert!(crd < class && class < early && early < svc && svc < deploy && deploy < custom);
        assert_eq!(ns.wave, 0, "waves do not reorder stage 1");
    }
}
