//! The order objects are applied in (and pruned in reverse).
//!
//! Stages first — definitions other objects need (CRDs, Namespaces,
//! ClusterRoles), then `*Class` kinds — then sync waves
//! (`relbot.dev/sync-wave`, or Argo CD's `argocd.argoproj.io/sync-wave`),
//! then Argo CD's kind order (gitops-engine `sync/sync_tasks.go`), then
//! namespace and name so the order never depends on file layout.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// relbot's own wave annotation; wins over Argo CD's when both are set.
pub const WAVE_ANNOTATION: &str = "relbot.dev/sync-wave";
/// Argo CD's wave annotation, read so existing repositories keep their order.
pub const ARGO_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
/// Argo CD resource hooks (PreSync, Sync, PostSync, SyncFail): run by the
/// sync engine around the waves, never part of the ordered objects.
pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";

/// Coarse steps before the waves; the sync engine waits for each stage
/// (CRDs `Established`) before the next. Plans show a stage as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Stage {
    /// 1: CustomResourceDefinitions, Namespaces, ClusterRoles.
    Definitions,
    /// 2: StorageClass, IngressClass, PriorityClass, RuntimeClass, … (`*Class`).
    Classes,
    /// 3: everything else, in waves.
    Resources,
}

impl Stage {
    /// 1, 2 or 3: how plans and the progress line name the stage.
    pub fn number(self) -> u8 {
        match self {
            Stage::Definitions => 1,
            Stage::Classes => 2,
            Stage::Resources => 3,
        }
    }
}

impl From<Stage> for u8 {
    fn from(stage: Stage) -> u8 {
        stage.number()
    }
}

impl TryFrom<u8> for Stage {
    type Error = String;

    fn try_from(number: u8) -> Result<Self, Self::Error> {
        match number {
            1 => Ok(Stage::Definitions),
            2 => Ok(Stage::Classes),
            3 => Ok(Stage::Resources),
            other => Err(format!("stage {other}: a stage is 1, 2 or 3")),
        }
    }
}

/// Where an object sits in a sync: compare to sort. The plan and the apply
/// loop read it too: objects of one [`SyncOrder::step`] are applied
/// together, and a health gate separates steps. Serialized so plans show it
/// (`{"stage": 3, "wave": 0}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SyncOrder {
    pub stage: Stage,
    /// Sync wave, default 0, negative allowed. Only the resources stage has
    /// waves: stages 1 and 2 run before every wave, so it is 0 there.
    pub wave: i64,
    /// Position in Argo CD's kind order; unknown kinds come after known ones.
    #[serde(skip)]
    pub kind_rank: usize,
}

impl SyncOrder {
    /// The gate between two steps: objects in the same stage and wave are
    /// applied together (kind order inside is kept by the apply order, not by
    /// waiting).
    pub fn step(&self) -> (Stage, i64) {
        (self.stage, self.wave)
    }
}

/// Argo CD's kind order (gitops-engine `sync/sync_tasks.go`).
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
    "APIService",
    "Ingress",
];

/// Position of `kind` in Argo CD's order; unknown kinds share the last rank.
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

pub fn stage_of(group: &str, kind: &str) -> Stage {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("", "Namespace")
        | ("rbac.authorization.k8s.io", "ClusterRole") => Stage::Definitions,
        (_, kind) if kind.ends_with("Class") => Stage::Classes,
        _ => Stage::Resources,
    }
}

/// A sync-wave annotation that is not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "annotation {annotation}: {value:?} is not an integer sync wave (e.g. \"-1\", \"0\", \"5\")"
)]
pub struct WaveError {
    pub annotation: &'static str,
    pub value: String,
}

/// The object's sync wave: relbot's annotation, else Argo CD's, else 0.
pub fn sync_wave(manifest: &Manifest) -> Result<i64, WaveError> {
    for annotation in [WAVE_ANNOTATION, ARGO_WAVE_ANNOTATION] {
        if let Some(value) = manifest.annotation(annotation) {
            return value.trim().parse().map_err(|_| WaveError {
                annotation,
                value: value.to_string(),
            });
        }
    }
    Ok(0)
}

/// The object's place in the apply order. A bad wave counts as 0 here;
/// validation reports it before anything is applied.
pub fn sync_order(manifest: &Manifest) -> SyncOrder {
    let stage = stage_of(manifest.group(), manifest.kind());
    SyncOrder {
        stage,
        // Stages 1 and 2 run before every wave.
        wave: match stage {
            Stage::Resources => sync_wave(manifest).unwrap_or(0),
            Stage::Definitions | Stage::Classes => 0,
        },
        kind_rank: kind_rank(manifest.kind()),
    }
}

/// Total order: stage, wave, kind, then kind name, namespace and name.
pub fn compare(a: &Manifest, b: &Manifest) -> Ordering {
    sync_order(a)
        .cmp(&sync_order(b))
        .then_with(|| a.kind().cmp(b.kind()))
        .then_with(|| a.namespace().cmp(&b.namespace()))
        .then_with(|| a.name().cmp(b.name()))
}

/// Sorts into apply order (reverse it to prune).
pub fn sort_manifests(manifests: &mut [Manifest]) {
    manifests.sort_by_cached_key(|m| {
        (
            sync_order(m),
            m.kind().to_string(),
            m.namespace().map(str::to_string),
            m.name().to_string(),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    fn m(api_version: &str, kind: &str, name: &str, wave: Option<(&str, &str)>) -> Manifest {
        let mut object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "ns"}});
        if let Some((annotation, value)) = wave {
            object["metadata"]["annotations"] = json!({annotation: value});
        }
        Manifest {
            object,
            origin: Origin {
                file: "x.yaml".into(),
                line: 1,
            },
        }
    }

    fn names(manifests: &[Manifest]) -> Vec<&str> {
        manifests.iter().map(Manifest::name).collect()
    }

    #[test]
    fn stages_then_waves_then_kinds_then_names() {
        let mut ms = vec![
            m("networking.k8s.io/v1", "Ingress", "ingress", None),
            m("apps/v1", "Deployment", "deploy-b", None),
            m("apps/v1", "Deployment", "deploy-a", None),
            m("v1", "Service", "svc", None),
            m("traefik.io/v1alpha1", "Middleware", "mw", None),
            m(
                "v1",
                "ConfigMap",
                "migrate-config",
                Some((ARGO_WAVE_ANNOTATION, "-1")),
            ),
            m(
                "batch/v1",
                "Job",
                "late-job",
                Some((WAVE_ANNOTATION, " 2 ")),
            ),
            m("storage.k8s.io/v1", "StorageClass", "fast", None),
            m("networking.k8s.io/v1", "IngressClass", "traefik", None),
            m("v1", "Namespace", "ns", None),
            m(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "crd",
                None,
            ),
            m("rbac.authorization.k8s.io/v1", "ClusterRole", "role", None),
            m(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "binding",
                None,
            ),
        ];
        sort_manifests(&mut ms);
        assert_eq!(
            names(&ms),
            [
                "ns",
                "crd",
                "role", // stage 1 in Argo's kind order
                "fast",
                "traefik",        // stage 2
                "migrate-config", // wave -1
                "binding",
                "svc",
                "deploy-a",
                "deploy-b",
                "ingress",
                "mw",       // wave 0 by kind, unknown last
                "late-job", // wave 2
            ]
        );
        assert_eq!(sync_order(&ms[0]).stage, Stage::Definitions);
        assert_eq!(sync_order(&ms[3]).stage, Stage::Classes);
        assert_eq!(sync_order(&ms[5]).wave, -1);
    }

    #[test]
    fn relbot_wave_wins_and_bad_waves_are_errors() {
        let mut both = m("v1", "ConfigMap", "a", Some((WAVE_ANNOTATION, "3")));
        both.object["metadata"]["annotations"][ARGO_WAVE_ANNOTATION] = json!("9");
        assert_eq!(sync_wave(&both), Ok(3));
        let bad = m(
            "v1",
            "ConfigMap",
            "a",
            Some((ARGO_WAVE_ANNOTATION, "early")),
        );
        let err = sync_wave(&bad).unwrap_err();
        assert_eq!(err.annotation, ARGO_WAVE_ANNOTATION);
        assert!(err.to_string().contains("\"early\""), "{err}");
        assert_eq!(sync_order(&bad).wave, 0);
    }

    #[test]
    fn stages_then_waves_then_kinds() {
        let at = |api: &str, kind: &str, wave: Option<&str>| {
            sync_order(&m(api, kind, "x", wave.map(|w| (ARGO_WAVE_ANNOTATION, w))))
        };
        let crd = at("apiextensions.k8s.io/v1", "CustomResourceDefinition", None);
        let ns = at("v1", "Namespace", Some("5"));
        let class = at("networking.k8s.io/v1", "IngressClass", None);
        let svc = at("v1", "Service", None);
        let deploy = at("apps/v1", "Deployment", None);
        let early = at("apps/v1", "Deployment", Some("-1"));
        let custom = at("example.com/v1", "Widget", None);
        assert!(ns < crd, "Namespace ranks before CRD inside stage 1");
        assert!(crd < class && class < early && early < svc && svc < deploy && deploy < custom);
        assert_eq!(ns.wave, 0, "waves do not reorder stage 1");
        assert_eq!(svc.step(), deploy.step(), "one wave, one gate");
    }

    #[test]
    fn plans_show_the_stage_number_and_the_wave() {
        let early = sync_order(&m("batch/v1", "Job", "j", Some((WAVE_ANNOTATION, "-1"))));
        let json = serde_json::to_value(early).unwrap();
        assert_eq!(json, json!({"stage": 3, "wave": -1}));
        let back: SyncOrder = serde_json::from_value(json!({"stage": 1, "wave": 0})).unwrap();
        assert_eq!(back.step(), (Stage::Definitions, 0));
        assert!(serde_json::from_value::<SyncOrder>(json!({"stage": 4, "wave": 0})).is_err());
    }

    #[test]
    fn unknown_kinds_rank_after_known_ones() {
        assert!(kind_rank("Ingress") < kind_rank("Middleware"));
        assert_eq!(kind_rank("Middleware"), kind_rank("HelmChart"));
        assert_eq!(kind_rank("Namespace"), 0);
    }
}
