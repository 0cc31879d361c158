//! What a sync, a dry-run or a diff means for the process's exit code, as
//! `diff`, `argocd app diff` and `flux diff` mean it: 0 in sync (nothing to
//! do), 1 changes found or held back, 2 an error. The `--output` documents
//! carry the same number.

use relbot::sync::plan::Plan;
use relbot::sync::result::SyncResult;

/// 2 when any plan has a problem, 1 when any has differences, else 0.
pub fn plans_exit_code(plans: &[Plan]) -> u8 {
    if plans.iter().any(|p| !p.problems.is_empty()) {
        2
    } else if plans.iter().any(Plan::has_differences) {
        1
    } else {
        0
    }
}

/// The worst of the results: 2 when one failed (or is Degraded), 1 when one
/// holds differences back, else 0.
pub fn results_exit_code(results: &[SyncResult]) -> u8 {
    results.iter().map(SyncResult::exit_code).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use relbot::cluster::client::RequestCounts;
    use relbot::cluster::health::HealthStatus;
    use relbot::config::Application;
    use relbot::manifest::{Manifest, Origin};
    use relbot::sync::plan::offline_plan;
    use relbot::sync::problem::PlanProblem;
    use relbot::sync::result::{RunPhase, Timings};
    use serde_json::json;

    /// An offline plan of `shop` with one ConfigMap per name.
    fn plan(names: &[&str]) -> Plan {
        let app: Application =
            serde_saphyr::from_str("name: shop\npath: shop\nnamespace: shop\n").unwrap();
        let manifests = names
            .iter()
            .map(|name| Manifest {
                object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "shop"}}),
                origin: Origin {
                    file: "shop/cm.yaml".into(),
                    line: 1,
                },
            })
            .collect();
        offline_plan(&app, None, manifests, "no kubeconfig found")
    }

    fn result(phase: RunPhase, health: HealthStatus) -> SyncResult {
        SyncResult {
            application: "shop".into(),
            revision: None,
            server: "https://cluster".into(),
            started_at: Utc::now(),
            phase,
            health,
            health_since: None,
            objects: Vec::new(),
            hooks: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            requests: RequestCounts::default(),
            status_recorded: false,
            timings: Timings::default(),
        }
    }

    #[test]
    fn a_plan_with_changes_is_1_a_problem_anywhere_is_2() {
        assert_eq!(plans_exit_code(&[]), 0);
        assert_eq!(plans_exit_code(&[plan(&[])]), 0, "nothing to do");
        // Offline, everything is "would create": changes found.
        assert_eq!(plans_exit_code(&[plan(&[]), plan(&["c"])]), 1);
        let mut broken = plan(&[]);
        broken.problems.push(PlanProblem {
            key: None,
            origin: None,
            message: "unknown kind".into(),
        });
        assert_eq!(plans_exit_code(&[plan(&["c"]), broken]), 2);
    }

    #[test]
    fn the_worst_result_decides() {
        let synced = || result(RunPhase::Synced, HealthStatus::Healthy);
        assert_eq!(results_exit_code(&[]), 0);
        assert_eq!(results_exit_code(&[synced()]), 0);
        let held = result(RunPhase::OutOfSync, HealthStatus::Healthy);
        assert_eq!(results_exit_code(&[synced(), held]), 1);
        let degraded = result(RunPhase::Synced, HealthStatus::Degraded);
        assert_eq!(results_exit_code(&[synced(), degraded]), 2);
        let failed = result(RunPhase::Failed, HealthStatus::Healthy);
        assert_eq!(results_exit_code(&[failed, synced()]), 2);
    }
}
