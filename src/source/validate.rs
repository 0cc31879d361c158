//! Offline checks of rendered objects, before anything is written: identity
//! fields, names, API versions, scope and namespace defaulting, sync waves,
//! duplicates, and — for built-in kinds — every field against the kind's
//! typed schema (a field nested at the wrong level is reported with its line).
//!
//! Every problem is collected; nothing stops at the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::kinds::{self, Scope};
use super::order;
use super::problem::{ProblemCode, Severity, ValidationProblem};
use super::read::{Locator, RenderedObject};
use super::yaml::{LineIndex, PathSeg, display_path};
use crate::dns_name::{is_dns_label, is_dns_subdomain, is_dns1035_label};
use crate::manifest::{Manifest, ObjectKey, Origin};

/// Scopes of custom kinds, learnt from CRDs anywhere in the desired state.
#[derive(Debug, Clone, Default)]
pub struct CustomScopes(HashMap<(String, String), Scope>);

impl CustomScopes {
    pub fn learn<'a>(&mut self, manifests: impl IntoIterator<Item = &'a Manifest>) {
        for m in manifests {
            if m.group() != "apiextensions.k8s.io" || m.kind() != "CustomResourceDefinition" {
                continue;
            }
            let spec = |p: &str| m.object.pointer(p).and_then(Value::as_str);
            let scope = match spec("/spec/scope") {
                Some("Cluster") => Scope::Cluster,
                Some("Namespaced") => Scope::Namespaced,
                _ => continue,
            };
            if let (Some(group), Some(kind)) = (spec("/spec/group"), spec("/spec/names/kind")) {
                self.0.insert((group.to_string(), kind.to_string()), scope);
            }
        }
    }

    pub fn get(&self, group: &str, kind: &str) -> Option<Scope> {
        self.0.get(&(group.to_string(), kind.to_string())).copied()
    }
}

/// The scope of a kind if known offline: built-in table, then CRDs.
pub fn scope_of(group: &str, kind: &str, custom: &CustomScopes) -> Option<Scope> {
    kinds::builtin(group, kind)
        .map(|k| k.scope)
        .or_else(|| custom.get(group, kind))
}

/// Finds lines inside objects, parsing each source file at most once and
/// only when a problem needs it.
pub(crate) struct LineResolver<'a> {
    root: &'a Path,
    indexes: HashMap<PathBuf, Option<LineIndex>>,
}

impl<'a> LineResolver<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        Self {
            root,
            indexes: HashMap::new(),
        }
    }

    /// The origin of `path` inside `object`, falling back to the object's own.
    fn origin(&mut self, object: &RenderedObject, path: &[PathSeg]) -> Origin {
        let origin = object.manifest.origin.clone();
        let Locator::Document {
            document_line,
            prefix,
        } = &object.locator
        else {
            return origin;
        };
        let root = self.root;
        let index = self.indexes.entry(origin.file.clone()).or_insert_with(|| {
            std::fs::read_to_string(root.join(&origin.file))
                .ok()
                .and_then(|text| LineIndex::build(&text).ok())
        });
        let Some(index) = index else { return origin };
        let full: Vec<PathSeg> = prefix.iter().chain(path).cloned().collect();
        let line = index.line_of(*document_line, &full).unwrap_or(origin.line);
        Origin {
            file: origin.file,
            line,
        }
    }
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

/// Validates one application's objects in place: namespaces are defaulted
/// (from `default_namespace`) on namespaced kinds. Returns every problem and
/// note; errors mean the application must not be synced.
pub(crate) fn validate_application(
    objects: &mut [RenderedObject],
    default_namespace: Option<&str>,
    custom: &CustomScopes,
    lines: &mut LineResolver<'_>,
) -> Vec<ValidationProblem> {
    let mut problems = Vec::new();
    for object in objects.iter_mut() {
        validate_object(object, default_namespace, custom, lines, &mut problems);
    }
    problems
}

fn validate_object(
    object: &mut RenderedObject,
    default_namespace: Option<&str>,
    custom: &CustomScopes,
    lines: &mut LineResolver<'_>,
    problems: &mut Vec<ValidationProblem>,
) {
    let mut report = |lines: &mut LineResolver<'_>,
                      object: &RenderedObject,
                      code,
                      path: &[PathSeg],
                      message: String| {
        let origin = lines.origin(object, path);
        let mut problem = ValidationProblem::at(code, origin, message);
        if !object.manifest.kind().is_empty() && !object.manifest.name().is_empty() {
            problem = problem.with_object(object.manifest.key());
        }
        problems.push(problem);
    };
    let value = &object.manifest.object;

    // Identity: apiVersion, kind, metadata.name.
    let mut identity_ok = true;
    let identity: [IdentityField; 2] = [
        ("apiVersion", valid_api_version, |v| {
            format!("apiVersion {v:?} is not `group/version` or `version`")
        }),
        ("kind", valid_kind, |k| {
            format!(
                "kind {k:?} must start with an uppercase letter and contain only letters and digits"
            )
        }),
    ];
    for (field, valid, invalid) in identity {
        if let Some((path, message)) = identity_problem(value, field, valid, invalid) {
            identity_ok = false;
            report(lines, object, ProblemCode::InvalidObject, &path, message);
        }
    }
    let metadata = value.get("metadata");
    match metadata {
        Some(Value::Object(_)) => {}
        Some(_) => {
            report(
                lines,
                object,
                ProblemCode::InvalidObject,
                &[key("metadata")],
                "metadata must be a mapping".into(),
            );
            return;
        }
        None => {
            report(
                lines,
                object,
                ProblemCode::InvalidObject,
                &[],
                "missing metadata (with at least a name)".into(),
            );
            return;
        }
    }
    let name_path = [key("metadata"), key("name")];
    match metadata.and_then(|m| m.get("name")) {
        Some(Value::String(name)) if !name.is_empty() => {
            if let Err(why) = check_name(object.manifest.kind(), name) {
                report(
                    lines,
                    object,
                    ProblemCode::InvalidObject,
                    &name_path,
                    format!("metadata.name {name:?} {why}"),
                );
            }
        }
        // Argo CD lets hooks have a generated name: relbot creates them
        // anew each time and never tracks them.
        Some(Value::String(_)) | None | Some(Value::Null)
            if metadata.and_then(|m| m.get("generateName")).is_some()
                && object
                    .manifest
                    .annotation(super::order::HOOK_ANNOTATION)
                    .is_some() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            let hint = if metadata.and_then(|m| m.get("generateName")).is_some() {
                " (generateName is not supported: relbot must know the name to track the object)"
            } else {
                ""
            };
            report(
                lines,
                object,
                ProblemCode::InvalidObject,
                &[key("metadata")],
                format!("missing metadata.name{hint}"),
            );
        }
        Some(_) => report(
            lines,
            object,
            ProblemCode::InvalidObject,
            &name_path,
            "metadata.name must be a string".into(),
        ),
    }
    let ns_path = [key("metadata"), key("namespace")];
    match metadata.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) if is_dns_label(ns) => {}
        Some(other) => report(
            lines,
            object,
            ProblemCode::Namespace,
            &ns_path,
            format!("metadata.namespace {other} is not a valid namespace name (DNS-1123 label)"),
        ),
    }
    check_labels(object, lines, &mut report);
    if let Err(e) = order::sync_wave(&object.manifest) {
        let path = [key("metadata"), key("annotations"), key(e.annotation)];
        report(lines, object, ProblemCode::SyncWave, &path, e.to_string());
    }
    if !identity_ok {
        return;
    }

    // API version and scope.
    let (group, version, kind) = (
        object.manifest.group().to_string(),
        object.manifest.version().to_string(),
        object.manifest.kind().to_string(),
    );
    let scope =
        match kinds::builtin(&group, &kind) {
            Some(info) if info.serves(&version) => Some(info.scope),
            Some(info) => {
                report(lines, object, ProblemCode::ApiVersion, &[key("apiVersion")], format!(
                "{kind} is not served as {}/{version} by Kubernetes 1.33; use apiVersion: {}",
                group, info.preferred_api_version()
            ).replace(" as /", " as "));
                return;
            }
            None => {
                let builtin: Vec<_> = kinds::builtin_by_kind(&kind).collect();
                if !builtin.is_empty() && kinds::is_kubernetes_group(&group) {
                    let options: Vec<_> =
                        builtin.iter().map(|k| k.preferred_api_version()).collect();
                    report(
                        lines,
                        object,
                        ProblemCode::ApiVersion,
                        &[key("apiVersion")],
                        format!(
                            "{kind} is not part of apiVersion {}; use apiVersion: {}",
                            object.manifest.api_version(),
                            options.join(" or ")
                        ),
                    );
                    return;
                }
                if kinds::is_complete_group(&group) {
                    report(
                        lines,
                        object,
                        ProblemCode::ApiVersion,
                        &[key("kind")],
                        format!(
                            "Kubernetes 1.33 has no kind {kind} in apiVersion {}",
                            object.manifest.api_version()
                        ),
                    );
                    return;
                }
                custom.get(&group, &kind)
            }
        };

    // Namespace defaulting (namespaced) or refusal (cluster-scoped).
    let namespace = object.manifest.namespace().map(str::to_string);
    match (scope, namespace) {
        (Some(Scope::Namespaced), None) => match default_namespace {
            Some(ns) => set_namespace(&mut object.manifest.object, ns),
            None => report(
                lines,
                object,
                ProblemCode::Namespace,
                &[key("metadata")],
                format!(
                    "{kind} is namespaced but names no namespace and the application sets none; set metadata.namespace or the application's namespace"
                ),
            ),
        },
        (Some(Scope::Cluster), Some(ns)) => report(
            lines,
            object,
            ProblemCode::Namespace,
            &ns_path,
            format!(
                "{kind} is cluster-scoped and cannot have a namespace (remove metadata.namespace: {ns})"
            ),
        ),
        (None, _) => {
            let origin = lines.origin(object, &[key("kind")]);
            problems.push(
                ValidationProblem::at(ProblemCode::NeedsDiscovery, origin, format!(
                    "{kind} ({}) is not a built-in kind and no CRD for it is in the desired state; its scope comes from API discovery at sync time",
                    object.manifest.api_version()
                ))
                .with_object(object.manifest.key())
                .with_severity(Severity::Warning),
            );
        }
        _ => {}
    }

    // Fields against the typed schema.
    match kinds::builtin(&group, &kind).and_then(|k| k.round_trip(&version)) {
        Some(round_trip) => check_fields(object, round_trip, lines, problems),
        None => check_metadata(object, lines, problems),
    }
}

fn set_namespace(object: &mut Value, namespace: &str) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.insert("namespace".into(), Value::String(namespace.to_string()));
    }
}

/// Deserialises into the typed struct; type errors and fields that did not
/// survive the round trip are reported with their lines.
fn check_fields(
    object: &RenderedObject,
    round_trip: kinds::RoundTrip,
    lines: &mut LineResolver<'_>,
    problems: &mut Vec<ValidationProblem>,
) {
    let api = format!(
        "{} {}",
        object.manifest.kind(),
        object.manifest.api_version()
    );
    match round_trip(&object.manifest.object) {
        Ok(typed) => {
            let mut unknown = Vec::new();
            lost_fields(
                &object.manifest.object,
                &typed,
                &mut Vec::new(),
                &mut unknown,
            );
            for path in unknown {
                let (field, parent) = path.split_last().expect("lost fields have a path");
                let field = match field {
                    PathSeg::Key(k) => k.clone(),
                    PathSeg::Index(i) => format!("[{i}]"),
                };
                let place = if parent.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in {}", display_path(parent))
                };
                let origin = lines.origin(object, &path);
                problems.push(
                    ValidationProblem::at(ProblemCode::UnknownField, origin, format!(
                        "unknown field {field:?} {place} ({api} has no such field there; is it indented at the wrong level or misspelt?)"
                    ))
                    .with_object(object.manifest.key()),
                );
            }
        }
        Err(e) => {
            let origin = lines.origin(object, &e.path);
            let at = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", display_path(&e.path))
            };
            problems.push(
                ValidationProblem::at(
                    ProblemCode::InvalidValue,
                    origin,
                    format!("{at}{} ({api})", e.message),
                )
                .with_object(object.manifest.key()),
            );
        }
    }
}

/// For kinds without a typed schema, at least metadata must be well-formed
/// (annotation values that are numbers are a classic).
fn check_metadata(
    object: &RenderedObject,
    lines: &mut LineResolver<'_>,
    problems: &mut Vec<ValidationProblem>,
) {
    let Some(metadata) = object.manifest.object.get("metadata") else {
        return;
    };
    let result: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, _> =
        serde_path_to_error::deserialize(metadata);
    if let Err(e) = result {
        let mut path = vec![key("metadata")];
        path.extend(super::yaml::path_from_serde(e.path()));
        let origin = lines.origin(object, &path);
        problems.push(
            ValidationProblem::at(
                ProblemCode::InvalidValue,
                origin,
                format!("{}: {}", display_path(&path), e.inner()),
            )
            .with_object(object.manifest.key()),
        );
    }
}

/// Paths present (non-null) in `original` but absent from `typed`; a lost
/// subtree is reported once, at its root. Values that survive in another
/// form (quantities, int-or-string) are not compared.
fn lost_fields(
    original: &Value,
    typed: &Value,
    path: &mut Vec<PathSeg>,
    out: &mut Vec<Vec<PathSeg>>,
) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                path.push(PathSeg::Key(k.clone()));
                match t.get(k) {
                    Some(tv) => lost_fields(v, tv, path, out),
                    None => out.push(path.clone()),
                }
                path.pop();
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, v) in o.iter().enumerate() {
                if let Some(tv) = t.get(i) {
                    path.push(PathSeg::Index(i));
                    lost_fields(v, tv, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

type Report<'r> =
    dyn FnMut(&mut LineResolver<'_>, &RenderedObject, ProblemCode, &[PathSeg], String) + 'r;

fn check_labels(object: &RenderedObject, lines: &mut LineResolver<'_>, report: &mut Report<'_>) {
    let Some(Value::Object(labels)) = object.manifest.object.pointer("/metadata/labels") else {
        return;
    };
    for (k, v) in labels {
        let path = [key("metadata"), key("labels"), key(k)];
        if let Err(why) = check_label_key(k) {
            report(
                lines,
                object,
                ProblemCode::InvalidObject,
                &path,
                format!("label key {k:?} {why}"),
            );
        }
        if let Value::String(v) = v
            && !is_label_value(v)
        {
            report(
                lines,
                object,
                ProblemCode::InvalidObject,
                &path,
                format!(
                    "label {k}: value {v:?} must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric"
                ),
            );
        }
    }
}

/// A required identity field: its name, what makes a string value valid,
/// and what to say about one that is not.
type IdentityField = (&'static str, fn(&str) -> bool, fn(&str) -> String);

/// What is wrong with a required string field (`apiVersion`, `kind`), and
/// where it points: at the field, or at the object when it is missing.
fn identity_problem(
    value: &Value,
    field: &'static str,
    valid: fn(&str) -> bool,
    invalid: fn(&str) -> String,
) -> Option<(Vec<PathSeg>, String)> {
    match value.get(field) {
        Some(Value::String(v)) if valid(v) => None,
        Some(Value::String(v)) => Some((vec![key(field)], invalid(v))),
        Some(_) => Some((vec![key(field)], format!("{field} must be a string"))),
        None => Some((Vec::new(), format!("missing {field}"))),
    }
}

fn valid_api_version(v: &str) -> bool {
    match v.split_once('/') {
        Some((group, version)) => is_dns_subdomain(group) && is_dns_label(version),
        None => is_dns_label(v),
    }
}

fn valid_kind(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase()) && k.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Name rules differ by kind, as in the API server's validation.
fn check_name(kind: &str, name: &str) -> Result<(), &'static str> {
    match kind {
        "Namespace" if !is_dns_label(name) => {
            Err("must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)")
        }
        "Service" if !is_dns1035_label(name) => Err(
            "must be a DNS-1035 label (start with a letter; lowercase letters, digits and '-', at most 63)",
        ),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                Err("may not be '.' or '..' or contain '/' or '%'")
            } else {
                Ok(())
            }
        }
        "Namespace" | "Service" => Ok(()),
        _ if !is_dns_subdomain(name) => Err(
            "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)",
        ),
        _ => Ok(()),
    }
}

fn check_label_key(k: &str) -> Result<(), &'static str> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, k),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err("has a prefix that is not a DNS subdomain");
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(
            "must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric, after an optional `prefix/`",
        );
    }
    Ok(())
}

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Objects declared more than once, in one application or across several
/// (two applications cannot own one object). Each pair is reported once,
/// at the later declaration, naming the first.
pub(crate) fn find_duplicates<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a Manifest)>,
) -> Vec<ValidationProblem> {
    let mut first: HashMap<ObjectKey, (&'a str, &'a Origin)> = HashMap::new();
    let mut problems = Vec::new();
    for (app, manifest) in objects {
        let key = manifest.key();
        if key.kind.is_empty() || key.name.is_empty() {
            continue;
        }
        match first.get(&key) {
            Some((first_app, first_origin)) => {
                let whose = if *first_app == app {
                    String::new()
                } else {
                    format!(" by application {first_app:?}")
                };
                problems.push(
                    ValidationProblem::at(
                        ProblemCode::Duplicate,
                        manifest.origin.clone(),
                        format!("duplicate object: already declared{whose} at {first_origin}"),
                    )
                    .with_object(key),
                );
            }
            None => {
                first.insert(key, (app, &manifest.origin));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
