//! This kustomization's transforms over the objects built so far:
//! namespace, labels, annotations and image rewrites, as kustomize applies them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldspecs::{
    FieldSpec, SELECTOR_LABELS, TEMPLATE_ANNOTATIONS, TEMPLATE_LABELS, apply_specs, merge_at,
};
use super::load::Kustomization;
use crate::image::{SplitReference, split_reference};
use crate::source::kinds::{self, Scope};
use crate::source::problem::ValidationProblem;
use crate::source::read::RenderedObject;
use crate::source::yaml::PathSeg;

pub(super) fn apply_transforms(
    k: &Kustomization,
    objects: &mut [RenderedObject],
) -> Result<(), Vec<ValidationProblem>> {
    let mut problems = Vec::new();
    let cluster_scoped_crds = crd_scopes(objects);
    if let Some(namespace) = k.body.get("namespace") {
        match namespace.as_str() {
            Some(ns) if !ns.is_empty() => {
                for object in objects.iter_mut() {
                    set_namespace(&mut object.manifest.object, ns, &cluster_scoped_crds);
                }
            }
            _ => problems.push(k.problem(
                &[PathSeg::Key("namespace".into())],
                "namespace must be a non-empty string",
            )),
        }
    }
    if let Some(labels) = k.body.get("commonLabels") {
        match string_map(labels) {
            Some(labels) => add_labels(objects, &labels, LabelReach::SelectorsAndTemplates),
            None => problems.push(k.problem(
                &[PathSeg::Key("commonLabels".into())],
                "commonLabels must map label keys to strings",
            )),
        }
    }
    if let Some(entries) = k.body.get("labels") {
        for (i, entry) in entries.as_array().into_iter().flatten().enumerate() {
            let at = [PathSeg::Key("labels".into()), PathSeg::Index(i)];
            let Some(pairs) = entry.get("pairs").and_then(string_map) else {
                problems.push(k.problem(&at, "labels[].pairs must map label keys to strings"));
                continue;
            };
            let flag = |name: &str| entry.get(name).and_then(Value::as_bool).unwrap_or(false);
            let reach = if flag("includeSelectors") {
                LabelReach::SelectorsAndTemplates
            } else if flag("includeTemplates") {
                LabelReach::Templates
            } else {
                LabelReach::Metadata
            };
            add_labels(objects, &pairs, reach);
        }
        if !entries.is_array() {
            problems.push(k.problem(
                &[PathSeg::Key("labels".into())],
                "labels must be a list of {pairs, includeSelectors, includeTemplates}",
            ));
        }
    }
    if let Some(annotations) = k.body.get("commonAnnotations") {
        match string_map(annotations) {
            Some(annotations) => {
                for object in objects.iter_mut() {
                    add_annotations(&mut object.manifest.object, &annotations);
                }
            }
            None => problems.push(k.problem(
                &[PathSeg::Key("commonAnnotations".into())],
                "commonAnnotations must map keys to strings",
            )),
        }
    }
    if let Some(images) = k.body.get("images") {
        let mut rules = Vec::new();
        for (i, entry) in images.as_array().into_iter().flatten().enumerate() {
            match ImageRule::parse(entry) {
                Some(rule) => rules.push(rule),
                None => problems.push(k.problem(
                    &[PathSeg::Key("images".into()), PathSeg::Index(i)],
                    "images[] needs a `name` and string newName/newTag/digest",
                )),
            }
        }
        for object in objects.iter_mut() {
            rewrite_images(&mut object.manifest.object, &rules);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Kinds declared cluster-scoped by CRDs in this build.
fn crd_scopes(objects: &[RenderedObject]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o.manifest.kind() == "CustomResourceDefinition")
        .filter(|o| {
            o.manifest
                .object
                .pointer("/spec/scope")
                .and_then(Value::as_str)
                == Some("Cluster")
        })
        .filter_map(|o| {
            let group = o.manifest.object.pointer("/spec/group")?.as_str()?;
            let kind = o.manifest.object.pointer("/spec/names/kind")?.as_str()?;
            Some((group.to_string(), kind.to_string()))
        })
        .collect()
}

/// Kustomize's rule: every object not known to be cluster-scoped gets the
/// namespace (overriding one it had).
fn set_namespace(object: &mut Value, namespace: &str, cluster_scoped_crds: &[(String, String)]) {
    let manifest_kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let group = crate::manifest::split_api_version(
        object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
    .0
    .to_string();
    let cluster = kinds::builtin(&group, &manifest_kind).is_some_and(|k| k.scope == Scope::Cluster)
        || cluster_scoped_crds
            .iter()
            .any(|(g, k)| *g == group && *k == manifest_kind);
    if cluster {
        if manifest_kind == "ClusterRoleBinding" {
            set_subject_namespaces(object, namespace);
        }
        return;
    }
    if let Some(metadata) = ensure_map(object, "metadata") {
        metadata.insert("namespace".into(), Value::String(namespace.into()));
    }
    if manifest_kind == "RoleBinding" {
        set_subject_namespaces(object, namespace);
    }
}

/// ServiceAccount subjects move with the namespace, as kustomize does for
/// subjects that named none or the default one.
fn set_subject_namespaces(object: &mut Value, namespace: &str) {
    let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) else {
        return;
    };
    for subject in subjects {
        let Some(subject) = subject.as_object_mut() else {
            continue;
        };
        if subject.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
            continue;
        }
        let current = subject.get("namespace").and_then(Value::as_str);
        if current.is_none_or(|ns| ns == "default" || ns.is_empty()) {
            subject.insert("namespace".into(), Value::String(namespace.into()));
        }
    }
}

fn string_map(value: &Value) -> Option<BTreeMap<String, String>> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            _ => None,
        })
        .collect()
}

fn ensure_map<'a>(object: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// How far labels reach into an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelReach {
    Metadata,
    Templates,
    SelectorsAndTemplates,
}

fn add_labels(
    objects: &mut [RenderedObject],
    labels: &BTreeMap<String, String>,
    reach: LabelReach,
) {
    for object in objects {
        let value = &mut object.manifest.object;
        merge_at(value, &["metadata", "labels"], labels, true);
        let mut specs: Vec<&FieldSpec> = Vec::new();
        if reach != LabelReach::Metadata {
            specs.extend(TEMPLATE_LABELS);
        }
        if reach == LabelReach::SelectorsAndTemplates {
            specs.extend(SELECTOR_LABELS);
        }
        apply_specs(value, &specs, labels);
    }
}

fn add_annotations(value: &mut Value, annotations: &BTreeMap<String, String>) {
    merge_at(value, &["metadata", "annotations"], annotations, true);
    apply_specs(
        value,
        &TEMPLATE_ANNOTATIONS.iter().collect::<Vec<_>>(),
        annotations,
    );
}

/// One `images:` entry.
#[derive(Debug, Clone, PartialEq)]
struct ImageRule {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

impl ImageRule {
    fn parse(entry: &Value) -> Option<Self> {
        let text = |key: &str| -> Option<Option<String>> {
            match entry.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(Value::Number(n)) => Some(Some(n.to_string())),
                Some(_) => None,
            }
        };
        Some(Self {
            name: text("name")??,
            new_name: text("newName")?,
            new_tag: text("newTag")?,
            digest: text("digest")?,
        })
    }

    /// Kustomize matches by the name as written (`nginx` does not match
    /// `docker.io/library/nginx`), so only the split is shared, not the
    /// normalisation.
    fn apply(&self, image: &str) -> Option<String> {
        let SplitReference { name, tag, digest } = split_reference(image);
        if name != self.name {
            return None;
        }
        let mut out = self.new_name.clone().unwrap_or_else(|| name.to_string());
        match (&self.new_tag, &self.digest) {
            (None, None) => {
                if let Some(tag) = tag {
                    out = format!("{out}:{tag}");
                }
                if let Some(digest) = digest {
                    out = format!("{out}@{digest}");
                }
            }
            (Some(tag), None) => out = format!("{out}:{tag}"),
            (None, Some(digest)) => out = format!("{out}@{digest}"),
            (Some(tag), Some(digest)) => out = format!("{out}:{tag}@{digest}"),
        }
        Some(out)
    }
}

/// Rewrites `image` in every container list anywhere in the object, as
/// kustomize's image transformer does (pods, templates, CRs with pod specs).
fn rewrite_images(value: &mut Value, rules: &[ImageRule]) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(
                    key.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let Value::Array(containers) = child
                {
                    for container in containers.iter_mut() {
                        if let Some(Value::String(image)) = container.get_mut("image")
                            && let Some(new) = rules.iter().find_map(|r| r.apply(image))
                        {
                            *image = new;
                        }
                    }
                }
                rewrite_images(child, rules);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_images(item, rules)),
        _ => {}
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Manifest, Origin};
    use crate::source::read::Locator;
    use serde_json::json;

    #[test]
    fn image_rules_replace_name_tag_and_digest() {
        let rule = |v: Value| ImageRule::parse(&v).unwrap();
        let tag = rule(json!({"name": "ahuora/api", "newTag": "0.0.18"}));
        assert_eq!(
            tag.apply("ahuora/api:0.0.17").as_deref(),
            Some("ahuora/api:0.0.18")
        );
        assert_eq!(tag.apply("ahuora/api-x:0.0.17"), None);
        let name = rule(json!({"name": "ahuora/api", "newName": "reg/api"}));
        assert_eq!(name.apply("ahuora/api:1").as_deref(), Some("reg/api:1"));
        let digest = rule(json!({"name": "a", "digest": "sha256:1"}));
        assert_eq!(digest.apply("a:1").as_deref(), Some("a@sha256:1"));
    }

    #[test]
    fn labels_reach_selectors_only_when_asked() {
        let mut value = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}}}});
        let mut objects = vec![RenderedObject {
            manifest: Manifest {
                object: value.take(),
                origin: Origin {
                    file: "x".into(),
                    line: 1,
                },
            },
            locator: Locator::Generated,
        }];
        let labels: BTreeMap<String, String> = [("team".to_string(), "core".to_string())].into();
        add_labels(&mut objects, &labels, LabelReach::Templates);
        let o = &objects[0].manifest.object;
        assert_eq!(o.pointer("/metadata/labels/team"), Some(&json!("core")));
        assert_eq!(
            o.pointer("/spec/template/metadata/labels/team"),
            Some(&json!("core"))
        );
        assert_eq!(o.pointer("/spec/selector/matchLabels/team"), None);
        add_labels(&mut objects, &labels, LabelReach::SelectorsAndTemplates);
        assert_eq!(
            objects[0]
                .manifest
                .object
                .pointer("/spec/selector/matchLabels/team"),
            Some(&json!("core"))
        );
    }
}
