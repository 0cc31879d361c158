//! Kinds that shape the API itself: CustomResourceDefinitions, APIServices
//! (aggregated APIs such as metrics-server's) and Namespaces.

use serde_json::Value;

use super::Health;
use super::read::{condition, condition_is, describe, str_at};

pub(super) fn crd(c: &Value) -> Health {
    if condition_is(c, "Established", "True") {
        Health::healthy()
    } else {
        Health::progressing("waiting for the CRD to be Established")
    }
}

/// An unavailable aggregated API (K3s's metrics-server stopped, say) makes
/// discovery slow and every client that lists its group fail. Progressing,
/// not Degraded: an APIService applied with the Deployment behind it reports
/// `MissingEndpoints` for its first seconds, and Degraded would fail that
/// wave's gate at once instead of letting the service start.
pub(super) fn api_service(a: &Value) -> Health {
    match condition(a, "Available") {
        Some(c) if c["status"].as_str() == Some("True") => Health::healthy(),
        Some(c) => Health::progressing(format!("API not available: {}", describe(c))),
        None => Health::progressing("waiting for the API server to check the service"),
    }
}

pub(super) fn namespace(n: &Value) -> Health {
    match str_at(n, "/status/phase") {
        Some("Terminating") => Health::progressing("namespace is terminating"),
        _ => Health::healthy(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HealthStatus, assess};
    use serde_json::{Value, json};

    fn api_service(conditions: Value) -> Value {
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"name": "metrics-server", "namespace": "kube-system"}},
            "status": {"conditions": conditions}})
    }

    #[test]
    fn unavailable_api_service_is_not_healthy() {
        let down = api_service(json!([{"type": "Available", "status": "False",
            "reason": "MissingEndpoints",
            "message": "endpoints for service/metrics-server in \"kube-system\" have no addresses"}]));
        let h = assess(&down);
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(
            h.message,
            "API not available: MissingEndpoints: endpoints for service/metrics-server in \"kube-system\" have no addresses"
        );
        let failing = api_service(json!([{"type": "Available", "status": "False",
            "reason": "FailedDiscoveryCheck"}]));
        assert_eq!(assess(&failing).status, HealthStatus::Progressing);
        let up = api_service(json!([{"type": "Available", "status": "True", "reason": "Passed"}]));
        assert_eq!(assess(&up).status, HealthStatus::Healthy);
        let unchecked = api_service(json!([]));
        assert_eq!(assess(&unchecked).status, HealthStatus::Progressing);
    }

    #[test]
    fn crds_and_namespaces() {
        let crd = |conditions: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "status": {"conditions": conditions}})
        };
        assert_eq!(
            assess(&crd(json!([{"type": "Established", "status": "True"}]))).status,
            HealthStatus::Healthy
        );
        assert_eq!(
            assess(&crd(json!([{"type": "NamesAccepted", "status": "True"}]))).status,
            HealthStatus::Progressing
        );
        let terminating =
            json!({"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Terminating"}});
        assert_eq!(assess(&terminating).status, HealthStatus::Progressing);
        let active =
            json!({"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"}});
        assert_eq!(assess(&active).status, HealthStatus::Healthy);
    }
}
