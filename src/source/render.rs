//! Files → objects: multi-document YAML and JSON under an application's path,
//! recursive, with include/exclude globs; a `kustomization.yaml` at the
//! application's path is rendered by [`super::kustomize`].
//!
//! Like Argo CD's directory source, YAML files that hold no Kubernetes objects
//! (a Helm `values.yaml`, a tool's config) are skipped with a note instead of
//! failing the application; a file that does look like manifests must parse.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::kustomize::{self, KustomizeTool};
use super::problem::{ProblemCode, Severity, ValidationProblem};
use super::read::{FileRole, RenderedObject, is_kustomization_file, read_objects};

use crate::config::Application;
use crate::manifest::Manifest;

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

/// The result of rendering one application: objects plus every problem.
#[derive(Debug, Default)]
pub struct Rendering {
    pub objects: Vec<RenderedObject>,
    pub problems: Vec<ValidationProblem>,
}

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

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
