//! Files → objects: multi-document YAML and JSON under an application's path,
//! recursive, with include/exclude globs; a `kustomization.yaml` at the
//! application's path is rendered by [`super::kustomize`].
//!
//! Like Argo CD's directory source, YAML files that hold no Kubernetes objects
//! (a Helm `values.yaml`, a tool's config) are skipped with a note instead of
//! failing the application; a file that does look like manifests must parse.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;

use super::kustomize::{self, KustomizeTool};
use super::problem::{ProblemCode, Severity, ValidationProblem};
use super::yaml::{self, LineIndex, PathSeg};
use crate::config::Application;
use crate::manifest::{Manifest, Origin};

/// Everything wrong with an application's files, each problem located.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", display_problems(.problems))]
pub struct RenderError {
    pub problems: Vec<ValidationProblem>,
}

fn display_problems(problems: &[ValidationProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// How to render; the defaults suit production.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// What to run for kustomizations relbot does not render itself.
    pub kustomize: KustomizeTool,
}

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

/// The result of rendering one application: objects plus every problem.
#[derive(Debug, Default)]
pub struct Rendering {
    pub objects: Vec<RenderedObject>,
    pub problems: Vec<ValidationProblem>,
}

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];
pub(crate) const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Renders one application's directory (relative to `root`) into manifests,
/// each remembering its file and line. Any error fails the whole application.
pub fn render_application(root: &Path, app: &Application) -> Result<Vec<Manifest>, RenderError> {
    let rendering = render(root, app, &RenderOptions::default());
    let problems: Vec<_> = rendering
        .problems
        .into_iter()
        .filter(ValidationProblem::is_error)
        .collect();
    if problems.is_empty() {
        Ok(rendering.objects.into_iter().map(|o| o.manifest).collect())
    } else {
        Err(RenderError { problems })
    }
}

/// Renders one application, collecting every problem instead of stopping at
/// the first. Objects are in file order; validation and sorting come later.
pub fn render(root: &Path, app: &Application, options: &RenderOptions) -> Rendering {
    // `path: .` (a repository that is one application, or a plain folder)
    // would name every file `./x.yaml`; origins read as written from the root.
    if app
        .path
        .components()
        .any(|c| c == std::path::Component::CurDir)
    {
        let mut app = app.clone();
        app.path = app
            .path
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        return render(root, &app, options);
    }
    let dir = root.join(&app.path);
    let mut rendering = Rendering::default();
    if !dir.is_dir() {
        rendering.problems.push(ValidationProblem::error(
            ProblemCode::Io,
            &app.path,
            0,
            format!(
                "application {:?}: path {} is not a directory under the source root",
                app.name,
                app.path.display()
            ),
        ));
        return rendering;
    }
    if let Some(kustomization) = kustomize::find_kustomization(&dir) {
        if !app.include.is_empty() || !app.exclude.is_empty() {
            rendering.problems.push(
                ValidationProblem::error(
                    ProblemCode::Kustomize,
                    app.path.join(kustomization),
                    0,
                    format!(
                        "application {:?} is a kustomization: include/exclude globs are ignored",
                        app.name
                    ),
                )
                .with_severity(Severity::Warning),
            );
        }
        match kustomize::render(root, &app.path, &options.kustomize) {
            Ok(objects) => rendering.objects = objects,
            Err(problems) => rendering.problems.extend(problems),
        }
        return rendering;
    }
    render_directory(root, app, &mut rendering);
    rendering
}

fn render_directory(root: &Path, app: &Application, rendering: &mut Rendering) {
    let (include, exclude) = match (glob_set(&app.include), glob_set(&app.exclude)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(msg), _) | (_, Err(msg)) => {
            rendering
                .problems
                .push(ValidationProblem::error(ProblemCode::Io, &app.path, 0, msg));
            return;
        }
    };
    let mut files = Vec::new();
    walk(
        root,
        &app.path,
        Path::new(""),
        &exclude,
        &mut files,
        &mut rendering.problems,
    );
    files.sort();
    let mut to_read = Vec::new();
    for relative in files {
        if !include.is_empty() && !include.is_match(&relative) {
            continue;
        }
        let file = app.path.join(&relative);
        if is_kustomization_file(&file) {
            rendering.problems.push(
                ValidationProblem::error(
                    ProblemCode::Skipped,
                    &file,
                    0,
                    "kustomization file in a directory application is not rendered; point an application at its directory to use it",
                )
                .with_severity(Severity::Info),
            );
            continue;
        }
        to_read.push(file);
    }
    for result in read_all(root, &to_read) {
        match result {
            Ok(objects) => rendering.objects.extend(objects),
            Err(problems) => rendering.problems.extend(problems),
        }
    }
}

type FileResult = Result<Vec<RenderedObject>, Vec<ValidationProblem>>;

/// Reads and parses files on all cores (parsing dominates rendering), with
/// results in the order of `files` so output never depends on scheduling.
fn read_all(root: &Path, files: &[PathBuf]) -> Vec<FileResult> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads <= 1 || files.len() < 2 * threads {
        return files
            .iter()
            .map(|f| read_objects(root, f, FileRole::Directory))
            .collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|f| read_objects(root, f, FileRole::Directory))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("file reader panicked"))
            .collect()
    })
}

fn glob_set(globs: &[String]) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let glob = GlobBuilder::new(glob)
            .build()
            .map_err(|e| format!("bad glob {glob:?}: {e}"))?;
        builder.add(glob);
    }
    builder.build().map_err(|e| e.to_string())
}

pub(crate) fn is_kustomization_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n))
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
}

/// Collects manifest files under `root/app_path/relative`, in name order,
/// skipping hidden entries, excluded paths and symlinked directories (which
/// could loop or leave the repository).
fn walk(
    root: &Path,
    app_path: &Path,
    relative: &Path,
    exclude: &GlobSet,
    files: &mut Vec<PathBuf>,
    problems: &mut Vec<ValidationProblem>,
) {
    let dir = root.join(app_path).join(relative);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(ValidationProblem::error(
                ProblemCode::Io,
                app_path.join(relative),
                0,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = relative.join(&name);
        if exclude.is_match(&child) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            walk(root, app_path, &child, exclude, files, problems);
        } else if has_manifest_extension(&child) && (file_type.is_file() || entry.path().is_file())
        {
            files.push(child);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn app(path: &str) -> Application {
        serde_saphyr::from_str(&format!("name: test\npath: {path}\n")).unwrap()
    }

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_yaml_and_json_recursively_and_skips_non_manifests() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "apps/a.yaml",
            "# comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        );
        write(
            root,
            "apps/sub/c.json",
            "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"c\"}}",
        );
        write(root, "apps/README.md", "# not yaml: [");
        write(root, "apps/notes.txt", "kind: nothing");
        write(
            root,
            "apps/values.yaml",
            "replicaCount: 2\nimage: {tag: x}\n",
        );
        write(
            root,
            "apps/.hidden/x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hidden\n",
        );
        let rendering = render(root, &app("apps"), &RenderOptions::default());
        let names: Vec<_> = rendering
            .objects
            .iter()
            .map(|o| (o.manifest.name().to_string(), o.manifest.origin.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("a".into(), "apps/a.yaml:2".into()),
                ("b".into(), "apps/a.yaml:7".into()),
                ("c".into(), "apps/sub/c.json:1".into())
            ] as [(String, String); 3]
        );
        assert_eq!(rendering.problems.len(), 1, "{:?}", rendering.problems);
        assert_eq!(rendering.problems[0].code, ProblemCode::Skipped);
        assert_eq!(
            rendering.problems[0].origin.file,
            Path::new("apps/values.yaml")
        );
    }

    #[test]
    fn include_and_exclude_globs_are_relative_to_the_app_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for f in [
            "keep.yaml",
            "drop.yaml",
            "sub/keep.yaml",
            "skipdir/keep.yaml",
        ] {
            write(
                root,
                &format!("app/{f}"),
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n",
                    f.replace(['/', '.'], "-")
                ),
            );
        }
        let mut a = app("app");
        a.include = vec!["**/keep.yaml".into(), "keep.yaml".into()];
        a.exclude = vec!["skipdir".into()];
        let rendering = render(root, &a, &RenderOptions::default());
        let names: Vec<_> = rendering
            .objects
            .iter()
            .map(|o| o.manifest.name().to_string())
            .collect();
        assert_eq!(names, ["keep-yaml", "sub-keep-yaml"]);
    }

    #[test]
    fn lists_are_expanded_with_item_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "l/list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: one}\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: two}\n",
        );
        let rendering = render(root, &app("l"), &RenderOptions::default());
        assert!(rendering.problems.is_empty(), "{:?}", rendering.problems);
        let got: Vec<_> = rendering
            .objects
            .iter()
            .map(|o| (o.manifest.kind().to_string(), o.manifest.origin.line))
            .collect();
        assert_eq!(
            got,
            [("ConfigMap".to_string(), 4), ("Secret".to_string(), 7)]
        );
    }

    #[test]
    fn syntax_errors_and_non_mappings_are_located() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "b/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n   labels: x\n",
        );
        write(
            root,
            "b/scalar.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- just\n- a list\n",
        );
        let err = render_application(root, &app("b")).unwrap_err();
        let got: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.origin.to_string(), p.code))
            .collect();
        assert_eq!(
            got,
            [
                ("b/bad.yaml:5".to_string(), ProblemCode::Syntax),
                ("b/scalar.yaml:5".to_string(), ProblemCode::InvalidObject)
            ]
        );
        assert!(
            err.to_string().starts_with("b/bad.yaml:5:10: error:"),
            "{err}"
        );
    }

    #[test]
    fn a_file_of_only_a_string_or_a_list_is_an_error_but_comments_are_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "s/comments.yaml", "# nothing here yet\n# TODO\n");
        write(
            root,
            "s/items.yaml",
            "# objects as list items\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n",
        );
        write(root, "s/string.yaml", "\napiVersion v1\n");
        let rendering = render(root, &app("s"), &RenderOptions::default());
        let got: Vec<_> = rendering
            .problems
            .iter()
            .map(|p| (p.origin.to_string(), p.severity, p.code))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "s/comments.yaml:0".to_string(),
                    Severity::Info,
                    ProblemCode::Skipped
                ),
                (
                    "s/items.yaml:2".to_string(),
                    Severity::Error,
                    ProblemCode::InvalidObject
                ),
                (
                    "s/string.yaml:2".to_string(),
                    Severity::Error,
                    ProblemCode::InvalidObject
                ),
            ]
        );
        assert!(
            rendering.problems[1]
                .message
                .contains("separated by `---` lines"),
            "{}",
            rendering.problems[1]
        );
        assert!(
            rendering.problems[2]
                .message
                .contains("plain string \"apiVersion v1\""),
            "{}",
            rendering.problems[2]
        );
    }

    #[test]
    fn a_template_is_named_as_one() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "t/chart.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
        );
        let err = render_application(tmp.path(), &app("t")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t/chart.yaml:4:"), "{text}");
        assert!(text.contains("looks like a Helm/Go template"), "{text}");
    }

    #[test]
    fn symlinks_may_not_leave_the_repository() {
        let outside = tempfile::tempdir().unwrap();
        write(
            outside.path(),
            "secret.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: outside\n",
        );
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "s/real.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inside\n",
        );
        std::os::unix::fs::symlink(root.join("s/real.yaml"), root.join("s/link.yaml")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.yaml"),
            root.join("s/escape.yaml"),
        )
        .unwrap();
        let rendering = render(root, &app("s"), &RenderOptions::default());
        let names: Vec<_> = rendering
            .objects
            .iter()
            .map(|o| o.manifest.name().to_string())
            .collect();
        assert_eq!(names, ["inside", "inside"]);
        assert_eq!(rendering.problems.len(), 1, "{:?}", rendering.problems);
        assert!(
            rendering.problems[0]
                .to_string()
                .starts_with("s/escape.yaml: error: symlink points outside"),
            "{}",
            rendering.problems[0]
        );
    }

    #[test]
    fn missing_path_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = render_application(tmp.path(), &app("nope")).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
