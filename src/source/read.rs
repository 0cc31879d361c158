//! One manifest file → objects with origins: multi-document YAML and JSON,
//! `List` kinds expanded, each object remembering its file and line. Both the
//! directory renderer and the native kustomize renderer read files through
//! here, so neither depends on the other for it.

use std::path::Path;

use serde_json::Value;

use super::problem::{ProblemCode, Severity, ValidationProblem};
use super::yaml::{self, LineIndex, PathSeg};
use crate::manifest::{Manifest, Origin};

/// A rendered object and how to find lines inside it later.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    pub manifest: Manifest,
    pub locator: Locator,
}

/// Where an object's fields are in the source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Locator {
    /// The object is the document starting at `document_line` of
    /// `manifest.origin.file`, under `prefix` (`items[3]` for a List item).
    Document {
        document_line: usize,
        prefix: Vec<PathSeg>,
    },
    /// Produced by a tool (external kustomize): no line inside it is known.
    Generated,
}

pub(crate) const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

pub(crate) fn is_kustomization_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n))
}

/// Why a file is read: a directory application skips files without objects;
/// a kustomization's `resources` entry must hold objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileRole {
    Directory,
    KustomizeResource,
}

/// Reads one file (relative to `root`) into objects with origins.
pub(crate) fn read_objects(
    root: &Path,
    file: &Path,
    role: FileRole,
) -> Result<Vec<RenderedObject>, Vec<ValidationProblem>> {
    let io = |message: String| vec![ValidationProblem::error(ProblemCode::Io, file, 0, message)];
    // A symlink in the repository must not read files outside it (and put
    // their contents into error messages).
    let path = root.join(file);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        let inside = match (path.canonicalize(), root.canonicalize()) {
            (Ok(target), Ok(root)) => target.starts_with(root),
            _ => false,
        };
        if !inside {
            return Err(io("symlink points outside the repository; not read".into()));
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io(format!("cannot read: {e}")))?;
    let documents = match yaml::parse_documents(&text) {
        Ok(documents) => documents,
        Err(e) => {
            if role == FileRole::Directory && !looks_like_manifests(&text) {
                return Err(vec![skipped(
                    file,
                    "not valid YAML and does not look like Kubernetes manifests",
                )]);
            }
            return Err(vec![
                ValidationProblem::error(
                    ProblemCode::Syntax,
                    file,
                    e.line,
                    with_template_hint(e.message, &text, e.line),
                )
                .with_column(e.column),
            ]);
        }
    };
    // A directory may hold YAML that is not for Kubernetes (a Helm values
    // file, a tool's config: mappings without apiVersion/kind) and files of
    // only comments; those are skipped. A plain string or a list where an
    // object belongs is almost always a slip (a lost `: `, objects written
    // as `- apiVersion:` items), so it is an error even there.
    if role == FileRole::Directory && !documents.iter().any(|d| is_object_like(&d.value)) {
        let slips: Vec<ValidationProblem> = documents
            .iter()
            .filter(|d| !d.value.is_object())
            .map(|d| not_an_object(file, d))
            .collect();
        if !slips.is_empty() {
            return Err(slips);
        }
        return Err(vec![skipped(
            file,
            "holds no Kubernetes objects (no apiVersion/kind)",
        )]);
    }
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    let mut index: Option<LineIndex> = None;
    for document in documents {
        if !document.value.is_object() {
            problems.push(not_an_object(file, &document));
            continue;
        }
        if is_list(&document.value) {
            let index = index.get_or_insert_with(|| LineIndex::build(&text).unwrap_or_default());
            expand_list(
                file,
                document.line,
                document.value,
                index,
                &mut objects,
                &mut problems,
            );
            continue;
        }
        objects.push(RenderedObject {
            manifest: Manifest {
                object: document.value,
                origin: Origin {
                    file: file.to_path_buf(),
                    line: document.line,
                },
            },
            locator: Locator::Document {
                document_line: document.line,
                prefix: Vec::new(),
            },
        });
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

/// A document that is a string, number or list where a Kubernetes object
/// (a mapping with apiVersion, kind and metadata) belongs, with the likely
/// slip that made it one.
fn not_an_object(file: &Path, document: &yaml::Document) -> ValidationProblem {
    const OBJECT: &str = "a Kubernetes object (a mapping with apiVersion, kind and metadata)";
    let message = match &document.value {
        Value::Array(items) if items.iter().any(is_object_like) => format!(
            "this document is a list of {} item{}, not {OBJECT}; write one object per document, separated by `---` lines, instead of `- ` items",
            items.len(),
            if items.len() == 1 { "" } else { "s" }
        ),
        Value::Array(_) => format!("this document is a list, not {OBJECT}"),
        Value::String(text) => format!(
            "this document is the plain string {:?}, not {OBJECT}; is a `: ` missing after a key, or a `#` before a comment?",
            preview(text)
        ),
        other => format!("this document is a {}, not {OBJECT}", type_name(other)),
    };
    ValidationProblem::error(ProblemCode::InvalidObject, file, document.line, message)
}

/// The start of a string for a message: one line, at most 40 characters.
fn preview(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 40 || line.len() < text.trim_end().len() {
        let cut: String = line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

fn skipped(file: &Path, why: &str) -> ValidationProblem {
    ValidationProblem::error(ProblemCode::Skipped, file, 0, format!("skipped: {why}"))
        .with_severity(Severity::Info)
}

/// A Helm or Go template (`{{ .Values.x }}`) is not YAML until rendered;
/// say so next to the parser's message, which alone reads like a typo.
fn with_template_hint(message: String, text: &str, line: usize) -> String {
    let at_line = line
        .checked_sub(1)
        .and_then(|i| text.lines().nth(i))
        .unwrap_or_default();
    if at_line.contains("{{") || (line == 0 && text.contains("{{")) {
        format!(
            "{message} (this looks like a Helm/Go template: relbot reads plain manifests and kustomizations; render the chart first, or use a kustomization with helmCharts)"
        )
    } else {
        message
    }
}

/// Argo CD's test for a file that failed to parse: report it only if it
/// mentions the fields every manifest has.
fn looks_like_manifests(text: &str) -> bool {
    text.contains("apiVersion") || text.contains("kind:")
}

fn is_object_like(value: &Value) -> bool {
    value.get("apiVersion").is_some() || value.get("kind").is_some()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// `kind: List` (or any `…List`) with `items`, as `kubectl get -o yaml` writes.
fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array)
}

fn expand_list(
    file: &Path,
    document_line: usize,
    mut list: Value,
    index: &LineIndex,
    objects: &mut Vec<RenderedObject>,
    problems: &mut Vec<ValidationProblem>,
) {
    let Some(Value::Array(items)) = list.get_mut("items").map(Value::take) else {
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let prefix = vec![PathSeg::Key("items".into()), PathSeg::Index(i)];
        let line = index
            .line_of(document_line, &prefix)
            .unwrap_or(document_line);
        if !item.is_object() {
            problems.push(ValidationProblem::error(
                ProblemCode::InvalidObject,
                file,
                line,
                format!(
                    "List item {i} is a {}, not a Kubernetes object",
                    type_name(&item)
                ),
            ));
            continue;
        }
        objects.push(RenderedObject {
            manifest: Manifest {
                object: item,
                origin: Origin {
                    file: file.to_path_buf(),
                    line,
                },
            },
            locator: Locator::Document {
                document_line,
                prefix,
            },
        });
    }
}
