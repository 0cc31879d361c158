//! `kustomization.yaml`: the common subset rendered natively (resources,
//! namespace, labels/commonLabels, commonAnnotations, images), everything else
//! handed to an installed `kustomize build` or `kubectl kustomize`.
//!
//! Native rendering keeps each object's real origin (the resource file and
//! line), which external output cannot: its objects point at the
//! kustomization file. Without a binary, an unsupported field is an error
//! naming the file, line and field, never silently ignored.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::kinds::{self, Scope};
use super::problem::{ProblemCode, ValidationProblem};
use super::read::{self, FileRole, KUSTOMIZATION_FILES, Locator, RenderedObject};
use super::yaml::{self, LineIndex, PathSeg};
use crate::image::{SplitReference, split_reference};
use crate::manifest::{Manifest, Origin};

/// What runs kustomizations relbot does not render itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KustomizeTool {
    /// `kustomize build` if on `PATH`, else `kubectl kustomize`, else none.
    #[default]
    Auto,
    /// Never run a binary: unsupported fields are errors.
    Disabled,
    /// This program and leading arguments; the directory is appended
    /// (e.g. `["kubectl", "kustomize"]`).
    Command(Vec<String>),
}

impl KustomizeTool {
    /// The command line to run, if any binary is available.
    fn resolve(&self) -> Option<Vec<String>> {
        match self {
            KustomizeTool::Disabled => None,
            KustomizeTool::Command(argv) => Some(argv.clone()),
            KustomizeTool::Auto => {
                if on_path("kustomize") {
                    Some(vec!["kustomize".into(), "build".into()])
                } else if on_path("kubectl") {
                    Some(vec!["kubectl".into(), "kustomize".into()])
                } else {
                    None
                }
            }
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The kustomization file's name in `dir`, if it has one.
pub fn find_kustomization(dir: &Path) -> Option<&'static str> {
    KUSTOMIZATION_FILES
        .iter()
        .copied()
        .find(|name| dir.join(name).is_file())
}

/// Fields rendered natively; anything else needs the kustomize binary.
const NATIVE_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "bases",
    "namespace",
    "labels",
    "commonLabels",
    "commonAnnotations",
    "images",
];

/// One parsed kustomization file.
struct Kustomization {
    /// Relative to the source root.
    file: PathBuf,
    dir: PathBuf,
    body: Map<String, Value>,
    lines: LineIndex,
    document_line: usize,
}

impl Kustomization {
    // Built once per failing kustomization and moved straight into a Vec:
    // boxing the problem would buy nothing.
    #[expect(clippy::result_large_err, reason = "cold error path")]
    fn load(root: &Path, dir: &Path) -> Result<Self, ValidationProblem> {
        let name = find_kustomization(&root.join(dir)).ok_or_else(|| {
            ValidationProblem::error(
                ProblemCode::Kustomize,
                dir,
                0,
                "directory used as a kustomize resource has no kustomization.yaml",
            )
        })?;
        let file = dir.join(name);
        let text = std::fs::read_to_string(root.join(&file)).map_err(|e| {
            ValidationProblem::error(ProblemCode::Io, &file, 0, format!("cannot read: {e}"))
        })?;
        let syntax = |e: yaml::YamlError| {
            ValidationProblem::error(ProblemCode::Syntax, &file, e.line, e.message.clone())
                .with_column(e.column)
        };
        let mut documents = yaml::parse_documents(&text).map_err(syntax)?;
        let lines = LineIndex::build(&text).map_err(syntax)?;
        let (body, document_line) = match documents.len() {
            1 => {
                let doc = documents.remove(0);
                match doc.value {
                    Value::Object(map) => (map, doc.line),
                    _ => {
                        return Err(ValidationProblem::error(
                            ProblemCode::Kustomize,
                            &file,
                            doc.line,
                            "a kustomization must be a mapping",
                        ));
                    }
                }
            }
            0 => (Map::new(), 1),
            _ => {
                return Err(ValidationProblem::error(
                    ProblemCode::Kustomize,
                    &file,
                    documents[1].line,
                    "a kustomization must be a single YAML document",
                ));
            }
        };
        Ok(Self {
            file,
            dir: dir.to_path_buf(),
            body,
            lines,
            document_line,
        })
    }

    fn line(&self, path: &[PathSeg]) -> usize {
        self.lines
            .line_of(self.document_line, path)
            .unwrap_or(self.document_line)
    }

    fn problem(&self, path: &[PathSeg], message: impl Into<String>) -> ValidationProblem {
        ValidationProblem::error(ProblemCode::Kustomize, &self.file, self.line(path), message)
    }

    /// The first field (in file order) relbot cannot render, with why.
    fn unsupported(&self) -> Option<(String, String)> {
        if let Some(kind) = self.body.get("kind").and_then(Value::as_str)
            && kind != "Kustomization"
        {
            return Some(("kind".into(), format!("kind {kind}")));
        }
        for (key, value) in &self.body {
            if !NATIVE_FIELDS.contains(&key.as_str()) {
                return Some((key.clone(), format!("field `{key}`")));
            }
            if key == "labels"
                && let Some(entries) = value.as_array()
            {
                for entry in entries {
                    if let Some(extra) = entry.as_object().and_then(|e| {
                        e.keys().find(|k| {
                            !["pairs", "includeSelectors", "includeTemplates"].contains(&k.as_str())
                        })
                    }) {
                        return Some((key.clone(), format!("field `labels[].{extra}`")));
                    }
                }
            }
            if key == "images"
                && let Some(entries) = value.as_array()
            {
                for entry in entries {
                    if let Some(extra) = entry.as_object().and_then(|e| {
                        e.keys().find(|k| {
                            !["name", "newName", "newTag", "digest"].contains(&k.as_str())
                        })
                    }) {
                        return Some((key.clone(), format!("field `images[].{extra}`")));
                    }
                }
            }
        }
        for (i, resource) in self.resource_entries() {
            if is_remote(&resource) {
                return Some((
                    self.resource_field(i).into(),
                    format!("remote resource {resource:?}"),
                ));
            }
        }
        None
    }

    /// Resources then (deprecated) bases, with their index in the combined list.
    fn resource_entries(&self) -> Vec<(usize, String)> {
        ["resources", "bases"]
            .iter()
            .flat_map(|field| {
                self.body
                    .get(*field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .enumerate()
            .map(|(i, v)| (i, v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    fn resource_field(&self, combined_index: usize) -> &'static str {
        let resources = self
            .body
            .get("resources")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if combined_index < resources {
            "resources"
        } else {
            "bases"
        }
    }

    fn resource_path(&self, combined_index: usize) -> Vec<PathSeg> {
        let resources = self
            .body
            .get("resources")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let (field, i) = if combined_index < resources {
            ("resources", combined_index)
        } else {
            ("bases", combined_index - resources)
        };
        vec![PathSeg::Key(field.into()), PathSeg::Index(i)]
    }
}

fn is_remote(resource: &str) -> bool {
    resource.contains("://") || resource.starts_with("github.com/") || resource.starts_with("git@")
}

/// Renders the kustomization at `dir` (relative to `root`).
pub(crate) fn render(
    root: &Path,
    dir: &Path,
    tool: &KustomizeTool,
) -> Result<Vec<RenderedObject>, Vec<ValidationProblem>> {
    let top = Kustomization::load(root, dir).map_err(|p| vec![p])?;
    match find_unsupported(root, &top, &mut Vec::new()) {
        Ok(None) => build(root, top, &mut vec![dir.to_path_buf()]),
        Ok(Some((kustomization, line, what))) => match tool.resolve() {
            Some(argv) => run_external(root, &top, &argv),
            None => Err(vec![ValidationProblem::error(
                ProblemCode::Kustomize,
                kustomization,
                line,
                format!(
                    "{what} is not rendered by relbot itself and no kustomize binary was found; \
                     install `kustomize` or `kubectl`, or use only resources, namespace, labels, commonLabels, commonAnnotations and images"
                ),
            )]),
        },
        Err(problems) => Err(problems),
    }
}

/// Walks nested kustomizations for the first field needing the binary.
fn find_unsupported(
    root: &Path,
    k: &Kustomization,
    seen: &mut Vec<PathBuf>,
) -> Result<Option<(PathBuf, usize, String)>, Vec<ValidationProblem>> {
    if let Some((field, what)) = k.unsupported() {
        let line = k.line(&[PathSeg::Key(field)]);
        return Ok(Some((k.file.clone(), line, what)));
    }
    for (i, resource) in k.resource_entries() {
        let Ok(path) = resolve(&k.dir, &resource) else {
            continue;
        };
        if root.join(&path).is_dir() && !seen.contains(&path) {
            seen.push(path.clone());
            let nested = Kustomization::load(root, &path)
                .map_err(|p| vec![p.with_origin(k.file.clone(), k.line(&k.resource_path(i)))])?;
            if let Some(found) = find_unsupported(root, &nested, seen)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

impl ValidationProblem {
    /// Re-points a problem found in a nested file at the place that refers to it,
    /// keeping the nested file in the message.
    fn with_origin(mut self, file: PathBuf, line: usize) -> Self {
        self.message = format!("{}: {}", self.origin.file.display(), self.message);
        self.origin = Origin { file, line };
        self
    }
}

/// `dir` + `resource`, normalised; refuses to leave the source root.
fn resolve(dir: &Path, resource: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in dir.join(resource).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("{resource:?} points outside the repository"));
                }
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{resource:?} must be a relative path"));
            }
        }
    }
    Ok(out)
}

/// Native build: resources in order, then this kustomization's transforms.
fn build(
    root: &Path,
    k: Kustomization,
    stack: &mut Vec<PathBuf>,
) -> Result<Vec<RenderedObject>, Vec<ValidationProblem>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (i, resource) in k.resource_entries() {
        let at = k.resource_path(i);
        if resource.is_empty() {
            problems.push(k.problem(&at, "resource entries must be non-empty strings"));
            continue;
        }
        let path = match resolve(&k.dir, &resource) {
            Ok(path) => path,
            Err(message) => {
                problems.push(k.problem(&at, message));
                continue;
            }
        };
        let full = root.join(&path);
        if full.is_dir() {
            if stack.contains(&path) {
                problems.push(k.problem(
                    &at,
                    format!(
                        "resource {resource:?} includes itself (cycle through {})",
                        path.display()
                    ),
                ));
                continue;
            }
            stack.push(path.clone());
            let nested = Kustomization::load(root, &path)
                .map_err(|p| p.with_origin(k.file.clone(), k.line(&at)));
            match nested
                .map_err(|p| vec![p])
                .and_then(|nested| build(root, nested, stack))
            {
                Ok(nested) => objects.extend(nested),
                Err(nested) => problems.extend(nested),
            }
            stack.pop();
        } else if full.is_file() {
            match read::read_objects(root, &path, FileRole::KustomizeResource) {
                Ok(read) => objects.extend(read),
                Err(read) => problems.extend(read),
            }
        } else {
            problems.push(k.problem(
                &at,
                format!(
                    "resource {resource:?} not found ({} does not exist)",
                    path.display()
                ),
            ));
        }
    }
    if let Err(transform_problems) = apply_transforms(&k, &mut objects) {
        problems.extend(transform_problems);
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

fn apply_transforms(
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

/// One place kustomize puts labels: `path` under objects of `kind` (and
/// `group`, when given); `create` makes missing maps.
struct FieldSpec {
    group: Option<&'static str>,
    kind: &'static str,
    path: &'static str,
    create: bool,
}

const fn spec(
    group: Option<&'static str>,
    kind: &'static str,
    path: &'static str,
    create: bool,
) -> FieldSpec {
    FieldSpec {
        group,
        kind,
        path,
        create,
    }
}

/// Pod template labels (kustomize `labels[].includeTemplates`).
const TEMPLATE_LABELS: &[FieldSpec] = &[
    spec(
        Some(""),
        "ReplicationController",
        "spec/template/metadata/labels",
        true,
    ),
    spec(None, "Deployment", "spec/template/metadata/labels", true),
    spec(None, "ReplicaSet", "spec/template/metadata/labels", true),
    spec(None, "DaemonSet", "spec/template/metadata/labels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/metadata/labels",
        true,
    ),
    spec(Some("batch"), "Job", "spec/template/metadata/labels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/volumeClaimTemplates/metadata/labels",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/metadata/labels",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

/// Selectors (kustomize `commonLabels`, `labels[].includeSelectors`).
const SELECTOR_LABELS: &[FieldSpec] = &[
    spec(Some(""), "Service", "spec/selector", true),
    spec(Some(""), "ReplicationController", "spec/selector", true),
    spec(None, "Deployment", "spec/selector/matchLabels", true),
    spec(None, "ReplicaSet", "spec/selector/matchLabels", true),
    spec(None, "DaemonSet", "spec/selector/matchLabels", true),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/selector/matchLabels",
        true,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "Deployment",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    spec(Some("batch"), "Job", "spec/selector/matchLabels", false),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    spec(
        Some("policy"),
        "PodDisruptionBudget",
        "spec/selector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/podSelector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    spec(
        Some("networking.k8s.io"),
        "NetworkPolicy",
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
];

/// Pod template annotations (kustomize `commonAnnotations`).
const TEMPLATE_ANNOTATIONS: &[FieldSpec] = &[
    spec(
        Some(""),
        "ReplicationController",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "Deployment",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "ReplicaSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        None,
        "DaemonSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("apps"),
        "StatefulSet",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "Job",
        "spec/template/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/metadata/annotations",
        true,
    ),
    spec(
        Some("batch"),
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

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

fn apply_specs(value: &mut Value, specs: &[&FieldSpec], pairs: &BTreeMap<String, String>) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let group = crate::manifest::split_api_version(
        value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
    .0
    .to_string();
    for spec in specs {
        if spec.kind == kind && spec.group.is_none_or(|g| g == group) {
            let path: Vec<&str> = spec.path.split('/').collect();
            merge_at(value, &path, pairs, spec.create);
        }
    }
}

/// Merges `pairs` into the map at `path`, fanning out over sequences on the
/// way (kustomize's `from/podSelector` walks every `from` entry).
fn merge_at(value: &mut Value, path: &[&str], pairs: &BTreeMap<String, String>, create: bool) {
    match value {
        Value::Array(items) => {
            for item in items {
                merge_at(item, path, pairs, create);
            }
        }
        Value::Object(map) => {
            let Some((first, rest)) = path.split_first() else {
                for (k, v) in pairs {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                return;
            };
            let missing = map.get(*first).is_none_or(Value::is_null);
            if missing {
                if !create {
                    return;
                }
                map.insert((*first).to_string(), Value::Object(Map::new()));
            }
            if let Some(child) = map.get_mut(*first) {
                merge_at(child, rest, pairs, create);
            }
        }
        _ => {}
    }
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

/// A remote base can make kustomize fetch from the network; a sync must not
/// hang on it forever.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(120);

/// `Command::output` with a deadline: the child is killed when it passes.
fn output_within(mut command: Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buffer);
            }
            buffer
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no result after {} s; killed", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs the kustomize binary on the top kustomization; its objects point at
/// the kustomization file (line 1), the only place relbot can name.
fn run_external(
    root: &Path,
    top: &Kustomization,
    argv: &[String],
) -> Result<Vec<RenderedObject>, Vec<ValidationProblem>> {
    let fail = |message: String| {
        vec![ValidationProblem::error(
            ProblemCode::Kustomize,
            &top.file,
            1,
            message,
        )]
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("empty kustomize command".into()))?;
    let mut command = Command::new(program);
    command.args(args).arg(root.join(&top.dir));
    let output = output_within(command, EXTERNAL_TIMEOUT)
        .map_err(|e| fail(format!("cannot run `{}`: {e}", argv.join(" "))))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            stderr.trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let documents = yaml::parse_documents(&text)
        .map_err(|e| fail(format!("`{}` printed invalid YAML: {e}", argv.join(" "))))?;
    Ok(documents
        .into_iter()
        .map(|d| RenderedObject {
            manifest: Manifest {
                object: d.value,
                origin: Origin {
                    file: top.file.clone(),
                    line: 1,
                },
            },
            locator: Locator::Generated,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn external_commands_are_killed_at_the_deadline() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        let output = output_within(echo, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (output.stdout.as_slice(), output.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        let mut sleep = Command::new("sleep");
        sleep.arg("10");
        let started = Instant::now();
        let err = output_within(sleep, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        assert_eq!(
            resolve(Path::new("a/b"), "../c/./d.yaml").unwrap(),
            Path::new("a/c/d.yaml")
        );
        assert!(resolve(Path::new("a"), "../../x").is_err());
    }
}
