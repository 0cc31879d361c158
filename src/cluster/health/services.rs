//! Objects that expose or store something: Services, Ingresses and
//! PersistentVolumeClaims, healthy once they have an address or a volume.

use serde_json::Value;

use super::Health;
use super::read::str_at;

pub(super) fn pvc(p: &Value) -> Health {
    match str_at(p, "/status/phase") {
        Some("Bound") => Health::healthy(),
        Some("Lost") => Health::degraded("the claim lost its volume"),
        _ => Health::progressing("waiting for the claim to be bound"),
    }
}

/// A volume is fine unless its reclaim failed; `Released` and `Available`
/// are states a volume rests in.
pub(super) fn pv(p: &Value) -> Health {
    match str_at(p, "/status/phase") {
        Some("Failed") => Health::degraded(
            str_at(p, "/status/message")
                .unwrap_or("the volume's reclaim failed")
                .to_string(),
        ),
        _ => Health::healthy(),
    }
}

fn has_address(object: &Value) -> bool {
    object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

pub(super) fn service(s: &Value) -> Health {
    if str_at(s, "/spec/type") == Some("LoadBalancer") && !has_address(s) {
        return Health::progressing("waiting for a load-balancer address");
    }
    Health::healthy()
}

pub(super) fn ingress(i: &Value) -> Health {
    if has_address(i) {
        return Health::healthy();
    }
    // K3s ships Traefik, which often publishes no address in Ingress status.
    let class = str_at(i, "/spec/ingressClassName")
        .or_else(|| str_at(i, "/metadata/annotations/kubernetes.io~1ingress.class"))
        .unwrap_or("");
    if class == "traefik" {
        return Health::healthy();
    }
    Health::progressing("waiting for an address")
}

#[cfg(test)]
mod tests {
    use super::super::{HealthStatus, assess};
    use serde_json::json;

    #[test]
    fn claims_services_ingresses() {
        let pending = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}});
        assert_eq!(assess(&pending).status, HealthStatus::Progressing);
        let bound = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}});
        assert_eq!(assess(&bound).status, HealthStatus::Healthy);
        let lost = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Lost"}});
        assert_eq!(assess(&lost).status, HealthStatus::Degraded);
        let failed_pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "status": {"phase": "Failed", "message": "recycler failed"}});
        assert_eq!(assess(&failed_pv).status, HealthStatus::Degraded);
        let released = json!({"apiVersion": "v1", "kind": "PersistentVolume", "status": {"phase": "Released"}});
        assert_eq!(assess(&released).status, HealthStatus::Healthy);
        let lb = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}});
        assert_eq!(assess(&lb).status, HealthStatus::Progressing);
        let cluster_ip = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {}}});
        assert_eq!(assess(&cluster_ip).status, HealthStatus::Healthy);
        let traefik = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "spec": {"ingressClassName": "traefik"}, "status": {}});
        assert_eq!(assess(&traefik).status, HealthStatus::Healthy);
        let nginx = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "spec": {"ingressClassName": "nginx"}, "status": {}});
        assert_eq!(assess(&nginx).status, HealthStatus::Progressing);
    }
}
