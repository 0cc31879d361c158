//! The `--output json|yaml` documents of `relbot sync`, `sync --dry-run`,
//! `diff` and `status`: what was planned or done, and the exit code it
//! means.

use relbot::sync::plan::{ClusterView, Plan};
use relbot::sync::plan_report::offline_notice;
use relbot::sync::result::SyncResult;
use serde::Serialize;

use super::exit_code::{plans_exit_code, results_exit_code};

/// A dry-run's or a diff's document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument<'a> {
    pub dry_run: bool,
    pub cluster_consulted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub applications: &'a [Plan],
    /// 0 nothing to do, 1 changes, 2 error (also the process exit code).
    pub exit_code: u8,
}

impl<'a> PlanDocument<'a> {
    pub fn new(plans: &'a [Plan]) -> Self {
        let offline_reason = plans.iter().find_map(|p| match &p.cluster {
            ClusterView::Offline { reason } => Some(reason.clone()),
            ClusterView::Live { .. } => None,
        });
        PlanDocument {
            dry_run: true,
            cluster_consulted: offline_reason.is_none() && !plans.is_empty(),
            notice: offline_reason.map(|r| offline_notice(&r)),
            applications: plans,
            exit_code: plans_exit_code(plans),
        }
    }
}

/// A real sync's document, or the stored results `relbot status` reads.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDocument<'a> {
    pub applications: &'a [SyncResult],
    pub exit_code: u8,
}

impl<'a> ResultDocument<'a> {
    pub fn new(results: &'a [SyncResult]) -> Self {
        ResultDocument {
            applications: results,
            exit_code: results_exit_code(results),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relbot::config::Application;
    use relbot::manifest::{Manifest, Origin};
    use relbot::sync::plan::offline_plan;
    use serde_json::json;

    fn plan() -> Plan {
        let app: Application =
            serde_saphyr::from_str("name: shop\npath: shop\nnamespace: shop\n").unwrap();
        let manifests = [
            (
                "shop/ns.yaml",
                1,
                json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "shop"}}),
            ),
            (
                "shop/web.yaml",
                4,
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"}}),
            ),
        ]
        .into_iter()
        .map(|(file, line, object)| Manifest {
            object,
            origin: Origin {
                file: file.into(),
                line,
            },
        })
        .collect();
        offline_plan(
            &app,
            Some("0123456789abcdef0123"),
            manifests,
            "no kubeconfig found",
        )
    }

    #[test]
    fn json_document_has_plan_and_exit_code() {
        let plans = [plan()];
        let doc = serde_json::to_value(PlanDocument::new(&plans)).unwrap();
        assert_eq!(doc["clusterConsulted"], json!(false));
        assert_eq!(doc["exitCode"], json!(1));
        let changes = &doc["applications"][0]["changes"];
        assert_eq!(changes[0]["action"], json!("create"));
        assert_eq!(changes[0]["validation"], json!("offline"));
        assert_eq!(changes[1]["origin"]["file"], json!("shop/web.yaml"));
        assert_eq!(changes[1]["key"]["kind"], json!("Deployment"));
    }
}
