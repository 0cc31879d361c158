//! Where an object goes in a sync, as the plan and the apply loop see it:
//! a [`Phase`] of stage and wave, projected from the source's
//! [`crate::source::order`] (stages, waves, Argo CD's kind order). Objects
//! of one phase are applied together, and a health gate separates phases.
//! Prune walks the same order backwards.

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;
use crate::source::order::{Stage, sync_order};

/// A sort key: lower runs first. Serialized so plans show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Phase {
    /// 1 definitions (CRDs, Namespaces, ClusterRoles), 2 `*Class` kinds, 3 the rest.
    pub stage: u8,
    /// Sync wave; only orders stage 3.
    pub wave: i64,
    #[serde(skip)]
    pub kind_rank: usize,
}

impl Phase {
    /// The gate between two phases: objects in the same stage and wave are
    /// applied together (kind order inside is kept by the apply order, not by
    /// waiting).
    pub fn step(&self) -> (u8, i64) {
        (self.stage, self.wave)
    }
}

pub fn phase_of(manifest: &Manifest) -> Phase {
    let order = sync_order(manifest);
    let stage = match order.stage {
        Stage::Definitions => 1,
        Stage::Classes => 2,
        Stage::Resources => 3,
    };
    Phase {
        stage,
        // Stages 1 and 2 run before every wave.
        wave: if stage == 3 { order.wave } else { 0 },
        kind_rank: order.kind_rank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use crate::source::order::ARGO_WAVE_ANNOTATION;
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
        assert_eq!(svc.step(), deploy.step(), "one wave, one gate");
    }
}
