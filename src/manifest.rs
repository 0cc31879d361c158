//! One rendered Kubernetes object: its body, its identity and where it came from.
//!
//! Every later stage (validation, plan, diff, apply, messages) speaks in these
//! terms, so an error about an object can always name its file and line.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// Where an object was read from. `line` is 1-based and points at the first
/// line of the object's YAML document (or JSON value) in `file`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Origin {
    /// Path relative to the source root (the repository checkout or `--source` dir).
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The identity of an object in a cluster. The API version is deliberately
/// not part of it: `apps/v1` and `apps/v1beta2` name the same Deployment.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectKey {
    /// API group; empty for the core group.
    pub group: String,
    pub kind: String,
    /// None for cluster-scoped objects (and, before defaulting, for namespaced
    /// objects that did not name one).
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    /// `Deployment.apps ahuora/django-api`, `Namespace ahuora`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " {ns}/{}", self.name),
            None => write!(f, " {}", self.name),
        }
    }
}

/// A desired object as rendered from the source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Manifest {
    /// The full object as it will be applied (after kustomize transforms and
    /// namespace defaulting).
    pub object: Value,
    pub origin: Origin,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// API group from `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }

    /// API version without the group (`apps/v1` → `v1`).
    pub fn version(&self) -> &str {
        split_api_version(self.api_version()).1
    }

    pub fn name(&self) -> &str {
        self.metadata_str("name").unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata_str("namespace")
    }

    fn metadata_str(&self, field: &str) -> Option<&str> {
        self.object.get("metadata")?.get(field)?.as_str()
    }

    /// A metadata annotation's value, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.object
            .get("metadata")?
            .get("annotations")?
            .get(key)?
            .as_str()
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }
}

/// Splits `group/version` into its parts; the core group has no slash.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            object,
            origin: Origin {
                file: "a.yaml".into(),
                line: 3,
            },
        }
    }

    #[test]
    fn identity_ignores_version_and_names_group() {
        let m = manifest(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "ahuora"}
        }));
        assert_eq!(m.group(), "apps");
        assert_eq!(m.version(), "v1");
        assert_eq!(m.key().to_string(), "Deployment.apps ahuora/api");
        assert_eq!(m.origin.to_string(), "a.yaml:3");
    }

    #[test]
    fn core_group_is_empty() {
        let m =
            manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}));
        assert_eq!(m.group(), "");
        assert_eq!(m.key().to_string(), "Namespace x");
    }
}
