//! `kustomization.yaml`: the common subset rendered natively (resources,
//! namespace, labels/commonLabels, commonAnnotations, images), everything else
//! handed to an installed `kustomize build` or `kubectl kustomize`.
//!
//! Native rendering keeps each object's real origin (the resource file and
//! line), which external output cannot: its objects point at the
//! kustomization file. Without a binary, an unsupported field is an error
//! naming the file, line and field, never silently ignored.

mod external;
mod fieldspecs;
mod load;
mod transform;

use std::path::{Path, PathBuf};

pub use external::KustomizeTool;

use super::problem::{ProblemCode, ValidationProblem};
use super::read::{self, FileRole, KUSTOMIZATION_FILES, RenderedObject};
use external::run_external;
use load::{Kustomization, find_unsupported, resolve};
use transform::apply_transforms;

/// The kustomization file's name in `dir`, if it has one.
pub fn find_kustomization(dir: &Path) -> Option<&'static str> {
    KUSTOMIZATION_FILES
        .iter()
        .copied()
        .find(|name| dir.join(name).is_file())
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
