//! Reading kustomization files: one parsed file with the lines of its
//! fields, its resource list resolved inside the source root, and the first
//! field (in any nested kustomization) that needs the kustomize binary.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::find_kustomization;
use crate::manifest::Origin;
use crate::source::problem::{ProblemCode, ValidationProblem};
use crate::source::yaml::{self, LineIndex, PathSeg};

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
pub(super) struct Kustomization {
    /// Relative to the source root.
    pub(super) file: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) body: Map<String, Value>,
    lines: LineIndex,
    document_line: usize,
}

impl Kustomization {
    // Built once per failing kustomization and moved straight into a Vec:
    // boxing the problem would buy nothing.
    #[expect(clippy::result_large_err, reason = "cold error path")]
    pub(super) fn load(root: &Path, dir: &Path) -> Result<Self, ValidationProblem> {
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

    pub(super) fn line(&self, path: &[PathSeg]) -> usize {
        self.lines
            .line_of(self.document_line, path)
            .unwrap_or(self.document_line)
    }

    pub(super) fn problem(
        &self,
        path: &[PathSeg],
        message: impl Into<String>,
    ) -> ValidationProblem {
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
    pub(super) fn resource_entries(&self) -> Vec<(usize, String)> {
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

    pub(super) fn resource_path(&self, combined_index: usize) -> Vec<PathSeg> {
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

/// Walks nested kustomizations for the first field needing the binary.
pub(super) fn find_unsupported(
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
    pub(super) fn with_origin(mut self, file: PathBuf, line: usize) -> Self {
        self.message = format!("{}: {}", self.origin.file.display(), self.message);
        self.origin = Origin { file, line };
        self
    }
}

/// `dir` + `resource`, normalised; refuses to leave the source root.
pub(super) fn resolve(dir: &Path, resource: &str) -> Result<PathBuf, String> {
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_root() {
        assert_eq!(
            resolve(Path::new("a/b"), "../c/./d.yaml").unwrap(),
            Path::new("a/c/d.yaml")
        );
        assert!(resolve(Path::new("a"), "../../x").is_err());
    }
}
