//! Writes a server dry-run cannot vouch for. A real kube-apiserver (seen on
//! v1.28 and v1.32) runs a Service's dry-run without its allocators: a
//! `nodePort` outside the node-port range and a `clusterIP` another Service
//! holds both pass `dryRun=All` and are refused only by the write itself.
//! The plan says so of each, and the run writes them first in their step,
//! one at a time, so a refusal stops the step before anything else of it is
//! written.

use serde_json::Value;

use kube::discovery::ApiResource;

/// What the plan notes of such an object.
pub(crate) const NOTE: &str = "its node port or cluster IP is checked only when it is written (a dry-run allocates neither), so it is written first in its wave";

/// A Service asking for a node port or a cluster IP of its own: the server
/// allocates those only when the object is really written.
pub(crate) fn allocates_on_write(kind: &ApiResource, desired: &Value) -> bool {
    kind.group.is_empty() && kind.kind == "Service" && asks_for_addresses(desired)
}

fn asks_for_addresses(service: &Value) -> bool {
    let spec = &service["spec"];
    // "None" (headless) and "" (let the server choose) allocate nothing.
    let own_ip = |ip: &Value| ip.as_str().is_some_and(|ip| !ip.is_empty() && ip != "None");
    let node_port = |port: &Value| port["nodePort"].as_i64().is_some_and(|p| p != 0);
    own_ip(&spec["clusterIP"])
        || spec["clusterIPs"]
            .as_array()
            .is_some_and(|ips| ips.iter().any(own_ip))
        || spec["ports"]
            .as_array()
            .is_some_and(|ports| ports.iter().any(node_port))
}

#[cfg(test)]
mod tests {
    use super::asks_for_addresses;
    use serde_json::json;

    #[test]
    fn a_service_asks_for_addresses_only_when_it_names_them() {
        let service = |spec| json!({"spec": spec});
        for (spec, asks) in [
            (json!({"ports": [{"port": 80}]}), false),
            (json!({"clusterIP": "None", "ports": [{"port": 80}]}), false),
            (json!({"clusterIP": ""}), false),
            (json!({"clusterIP": "10.43.0.10"}), true),
            (json!({"clusterIPs": ["None"]}), false),
            (json!({"clusterIPs": ["10.43.0.10"]}), true),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
                true,
            ),
            (json!({"type": "NodePort", "ports": [{"port": 80}]}), false),
        ] {
            assert_eq!(asks_for_addresses(&service(spec.clone())), asks, "{spec}");
        }
    }
}
