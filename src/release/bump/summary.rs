//! What a bump does to its application, for the PR body: the application is
//! rendered offline before and after the edit (the same `load_desired` the
//! reconciler plans from) and the objects that differ are listed with their
//! container images. Never a value other than images: Secrets and
//! ConfigMaps are named, their data is not shown.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::config::Config;
use crate::manifest::ObjectKey;
use crate::source::load_desired;

/// Objects listed in a PR body at most; the rest are counted.
const MAX_LISTED: usize = 20;

/// The rendered objects of one application, by key.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    objects: BTreeMap<String, Value>,
    pub problems: usize,
}

/// Renders `application` from the tree at `root`. Problems are counted,
/// not shown (they belong to `relbot validate`).
pub fn render_application(root: &Path, config: &Config, application: &str) -> Rendered {
    let mut only = config.clone();
    only.applications.retain(|a| a.name == application);
    if only.applications.is_empty() {
        return Rendered::default();
    }
    match load_desired(root, &only) {
        Ok(apps) => Rendered {
            objects: apps
                .iter()
                .flat_map(|a| a.manifests.iter())
                .map(|m| (describe(&m.key()), m.object.clone()))
                .collect(),
            problems: 0,
        },
        Err(e) => Rendered {
            objects: BTreeMap::new(),
            problems: e.errors().count().max(1),
        },
    }
}

/// A short Markdown summary of `after` against `before`.
pub fn summarize(application: &str, before: &Rendered, after: &Rendered) -> String {
    if after.problems > 0 {
        return format!(
            "`{application}` does not render after this change ({} problem(s)); run `relbot validate` on the branch.",
            after.problems
        );
    }
    let mut lines = Vec::new();
    let mut changed = 0;
    for (key, new) in &after.objects {
        let old = before.objects.get(key);
        if old == Some(new) {
            continue;
        }
        changed += 1;
        if lines.len() >= MAX_LISTED {
            continue;
        }
        let images = image_changes(old, new);
        let line = match (old, images.is_empty()) {
            (None, _) => format!("- {key}: added"),
            (Some(_), true) => format!("- {key}: changed"),
            (Some(_), false) => format!("- {key}: {}", images.join(", ")),
        };
        lines.push(line);
    }
    let removed: Vec<&String> = before
        .objects
        .keys()
        .filter(|k| !after.objects.contains_key(*k))
        .collect();
    for key in &removed {
        changed += 1;
        if lines.len() < MAX_LISTED {
            lines.push(format!("- {key}: removed"));
        }
    }
    if changed > lines.len() {
        lines.push(format!("- … and {} more", changed - lines.len()));
    }
    let header = format!(
        "`relbot sync --dry-run` (offline render) for `{application}`: {} object(s), {changed} changed.",
        after.objects.len()
    );
    if lines.is_empty() {
        header
    } else {
        format!("{header}\n\n{}", lines.join("\n"))
    }
}

fn describe(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) => format!("{} {ns}/{}", key.kind, key.name),
        None => format!("{} {}", key.kind, key.name),
    }
}

/// `container api: a:1 → a:2` for each container whose image changed.
fn image_changes(old: Option<&Value>, new: &Value) -> Vec<String> {
    let before = old.map(container_images).unwrap_or_default();
    container_images(new)
        .into_iter()
        .filter_map(|(name, image)| match before.get(&name) {
            Some(previous) if *previous != image => {
                Some(format!("container {name}: {previous} → {image}"))
            }
            _ => None,
        })
        .collect()
}

/// Container name → image for every pod template in the object.
fn container_images(object: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for spec in pod_specs(object) {
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            for container in spec
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(name), Some(image)) = (
                    container.get("name").and_then(Value::as_str),
                    container.get("image").and_then(Value::as_str),
                ) {
                    out.insert(name.to_string(), image.to_string());
                }
            }
        }
    }
    out
}

fn pod_specs(object: &Value) -> Vec<&Value> {
    [
        "/spec",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
        "/template/spec",
    ]
    .iter()
    .filter_map(|p| object.pointer(p))
    .filter(|s| s.get("containers").is_some())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str) -> Value {
        json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}})
    }

    #[test]
    fn lists_image_changes_and_never_other_values() {
        let mut before = Rendered::default();
        before
            .objects
            .insert("Deployment a/api".into(), deployment("x:1"));
        before.objects.insert(
            "Secret a/s".into(),
            json!({"kind": "Secret", "stringData": {"password": "hunter2"}}),
        );
        let mut after = before.clone();
        after
            .objects
            .insert("Deployment a/api".into(), deployment("x:2"));
        after.objects.insert(
            "Secret a/s".into(),
            json!({"kind": "Secret", "stringData": {"password": "swordfish"}}),
        );
        let text = summarize("platform", &before, &after);
        assert!(text.contains("2 object(s), 2 changed"), "{text}");
        assert!(
            text.contains("- Deployment a/api: container api: x:1 → x:2"),
            "{text}"
        );
        assert!(text.contains("- Secret a/s: changed"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("swordfish"));
    }
}
