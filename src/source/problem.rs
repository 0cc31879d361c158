//! What is wrong (or worth knowing) about the desired state, with the place to
//! fix it: every render and validation finding is one of these, so the CLI can
//! print them all at once, compiler-style or as JSON.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::{ObjectKey, Origin};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the sync: nothing is written while any error remains.
    Error,
    /// Worth reading; the sync goes ahead.
    Warning,
    /// For the curious (files skipped because they hold no objects).
    Info,
}

/// Machine-readable class of a problem (stable names for JSON and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemCode {
    /// A file or directory could not be read.
    Io,
    /// Not valid YAML/JSON.
    Syntax,
    /// A kustomization that cannot be rendered.
    Kustomize,
    /// A document that is not a Kubernetes object, or misses required fields.
    InvalidObject,
    /// A field the kind's schema does not have at that place.
    UnknownField,
    /// A field whose value has the wrong type or shape.
    InvalidValue,
    /// `apiVersion` is not served for the kind.
    ApiVersion,
    /// Namespace missing, invalid, or set on a cluster-scoped kind.
    Namespace,
    /// The same object declared twice (in one application or across two).
    Duplicate,
    /// A sync-wave annotation that is not an integer.
    SyncWave,
    /// A kind relbot cannot place offline; API discovery decides at sync time.
    NeedsDiscovery,
    /// A file skipped because it holds no Kubernetes objects.
    Skipped,
}

/// One finding, located at a file and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationProblem {
    /// File (relative to the source root) and 1-based line; the line is the
    /// offending field's when known, else the object's first line.
    #[serde(flatten)]
    pub origin: Origin,
    /// Column, for syntax errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Application the problem belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectKey>,
    pub severity: Severity,
    pub code: ProblemCode,
    pub message: String,
}

impl ValidationProblem {
    pub fn error(
        code: ProblemCode,
        file: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        Self {
            origin: Origin {
                file: file.into(),
                line,
            },
            column: None,
            application: None,
            object: None,
            severity: Severity::Error,
            code,
            message: message.into(),
        }
    }

    pub fn at(code: ProblemCode, origin: Origin, message: impl Into<String>) -> Self {
        Self::error(code, origin.file, origin.line, message)
    }

    pub fn with_object(mut self, key: ObjectKey) -> Self {
        self.object = Some(key);
        self
    }

    pub fn with_column(mut self, column: usize) -> Self {
        self.column = Some(column).filter(|c| *c > 0);
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

impl fmt::Display for ValidationProblem {
    /// `platform/api.yaml:12: error: Deployment.apps ahuora/django-api: unknown field …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin.file.display())?;
        if self.origin.line > 0 {
            write!(f, ":{}", self.origin.line)?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: ", self.severity)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Sorts problems the way a reader scans them: by file, then line.
pub fn sort_problems(problems: &mut [ValidationProblem]) {
    problems
        .sort_by(|a, b| (&a.origin, a.column, a.severity).cmp(&(&b.origin, b.column, b.severity)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_compiler_style_and_serialises_flat() {
        let key = ObjectKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("ahuora".into()),
            name: "api".into(),
        };
        let p = ValidationProblem::error(
            ProblemCode::UnknownField,
            "platform/api.yaml",
            12,
            "unknown field spec.template.spec.image",
        )
        .with_object(key);
        assert_eq!(
            p.to_string(),
            "platform/api.yaml:12: error: Deployment.apps ahuora/api: unknown field spec.template.spec.image"
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["file"], "platform/api.yaml");
        assert_eq!(json["line"], 12);
        assert_eq!(json["code"], "unknown-field");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["object"]["kind"], "Deployment");
        let p = ValidationProblem::error(ProblemCode::Syntax, "a.yaml", 3, "bad").with_column(7);
        assert_eq!(p.to_string(), "a.yaml:3:7: error: bad");
    }
}
