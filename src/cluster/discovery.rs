//! Which kinds the cluster serves: group/version/kind → resource path and
//! scope. Built from discovery, extended with the kinds that CRDs in the
//! same plan will add (so their objects can be planned before the CRD
//! exists), and rebuilt after CRDs are applied.

use std::collections::HashMap;

use kube::core::discovery::Scope;
use kube::discovery::ApiResource;
use serde_json::Value;

/// A kind the cluster serves (or will, once a planned CRD is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// True when the kind comes from a CRD in the plan, not from the server.
    pub pending: bool,
}

impl ResolvedKind {
    /// `/api/v1/namespaces/x/configmaps`, `/apis/apps/v1/deployments`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let r = &self.resource;
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", r.plural),
            None => format!("{base}/{}", r.plural),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct KindIndex {
    exact: HashMap<(String, String, String), ResolvedKind>,
    /// The preferred version per group and kind (for listing what relbot
    /// owns when the desired objects no longer name a version).
    preferred: HashMap<(String, String), ResolvedKind>,
}

impl KindIndex {
    pub fn from_discovery(discovery: &kube::Discovery) -> Self {
        let mut index = KindIndex::default();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_string();
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    let kind = ResolvedKind {
                        namespaced: caps.scope == Scope::Namespaced,
                        resource,
                        pending: false,
                    };
                    index.insert(kind, version == preferred);
                }
            }
        }
        index
    }

    pub fn insert(&mut self, kind: ResolvedKind, preferred: bool) {
        let r = &kind.resource;
        let gk = (r.group.clone(), r.kind.clone());
        if preferred || !self.preferred.contains_key(&gk) {
            self.preferred.insert(gk, kind.clone());
        }
        self.exact
            .insert((r.group.clone(), r.version.clone(), r.kind.clone()), kind);
    }

    pub fn resolve(&self, group: &str, version: &str, kind: &str) -> Option<&ResolvedKind> {
        self.exact
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
    }

    pub fn resolve_group_kind(&self, group: &str, kind: &str) -> Option<&ResolvedKind> {
        self.preferred.get(&(group.to_string(), kind.to_string()))
    }

    /// Adds the kinds a CustomResourceDefinition body defines, marked
    /// pending, unless the server already serves them. Returns how many
    /// were added.
    pub fn add_pending_crd(&mut self, crd: &Value) -> usize {
        let spec = &crd["spec"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            spec["names"]["kind"].as_str(),
            spec["names"]["plural"].as_str(),
        ) else {
            return 0;
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let mut added = 0;
        for version in spec["versions"].as_array().into_iter().flatten() {
            let Some(name) = version["name"].as_str() else {
                continue;
            };
            if version["served"].as_bool() == Some(false)
                || self.resolve(group, name, kind).is_some()
            {
                continue;
            }
            let resource = ApiResource {
                group: group.to_string(),
                version: name.to_string(),
                api_version: format!("{group}/{name}"),
                kind: kind.to_string(),
                plural: plural.to_string(),
            };
            let storage = version["storage"].as_bool() == Some(true);
            self.insert(
                ResolvedKind {
                    resource,
                    namespaced,
                    pending: true,
                },
                storage,
            );
            added += 1;
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_kinds_from_a_crd() {
        let mut index = KindIndex::default();
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": true, "storage": true}, {"name": "v0", "served": false}]}});
        assert_eq!(index.add_pending_crd(&crd), 1);
        let kind = index.resolve("example.com", "v1", "Widget").unwrap();
        assert!(kind.pending && kind.namespaced);
        assert_eq!(
            kind.collection_path(Some("ns")),
            "/apis/example.com/v1/namespaces/ns/widgets"
        );
        assert!(index.resolve("example.com", "v0", "Widget").is_none());
        assert!(index.resolve_group_kind("example.com", "Widget").is_some());
    }

    #[test]
    fn core_paths() {
        let kind = ResolvedKind {
            resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Namespace".into(),
                plural: "namespaces".into(),
            },
            namespaced: false,
            pending: false,
        };
        assert_eq!(kind.collection_path(Some("ignored")), "/api/v1/namespaces");
    }
}
